package ui

import (
	"net/http"
	"strings"
)

// signinPage shows the sign-in form. Its CSRF value is a fresh random
// string in a short-lived cookie and in the form (double submit): a page of
// another site cannot read the cookie to forge the field, so it cannot sign
// a victim in to the attacker's account.
func (h *Handler) signinPage(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil && h.sessions.get(c.Value) != nil {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	h.signinForm(w, r, http.StatusOK, "")
}

func (h *Handler) signinForm(w http.ResponseWriter, r *http.Request, code int, msg string) {
	v := randomID()
	http.SetCookie(w, cookie(r, signinCookie, v, 600))
	h.render(w, r, nil, code, "signin", "Sign in", map[string]any{"SigninCSRF": v, "Error": msg})
}

// signin checks the token by asking the API who it is (GET /whoami with it
// as the bearer) and starts a session for it. The token travels only in
// this POST's body; the answer sets the session cookie.
func (h *Handler) signin(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		h.refuse(w, r, http.StatusForbidden, "Refused: the sign-in did not come from the dashboard's own page (cross-origin).")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		h.refuse(w, r, http.StatusBadRequest, "The sign-in form could not be read.")
		return
	}
	c, err := r.Cookie(signinCookie)
	if err != nil || !sameToken(r.PostForm.Get(csrfField), c.Value) {
		h.refuse(w, r, http.StatusForbidden, "Refused: the sign-in form's security token is missing or wrong. Reload the sign-in page and retry.")
		return
	}
	tok := strings.TrimSpace(r.PostForm.Get("token"))
	if tok == "" {
		h.signinForm(w, r, http.StatusBadRequest, "Paste your API token (hershy token create prints one; the admin's is in the data directory's admin.token).")
		return
	}
	ctx, cancel := pageCtx(r)
	defer cancel()
	var me struct {
		UserID string `json:"user_id"`
		Admin  bool   `json:"admin"`
	}
	c2 := &apiClient{api: h.api, token: tok}
	if err := c2.get(ctx, "/whoami", &me); err != nil {
		msg := "The Host did not accept that token: it is wrong or was revoked."
		if !isStatus(err, http.StatusUnauthorized) {
			msg = "Could not check the token: " + err.Error()
		}
		h.signinForm(w, r, http.StatusUnauthorized, msg)
		return
	}
	s := h.sessions.create(tok, me.UserID, me.Admin)
	http.SetCookie(w, cookie(r, signinCookie, "", -1))
	http.SetCookie(w, cookie(r, sessionCookie, s.id, int(h.opts.SessionMax.Seconds())))
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

// signout ends the session (the token stays valid: it is the user's).
func (h *Handler) signout(w http.ResponseWriter, r *http.Request, req *request) {
	h.sessions.remove(req.s.id)
	http.SetCookie(w, cookie(r, sessionCookie, "", -1))
	http.Redirect(w, r, "/ui/signin", http.StatusSeeOther)
}
