package api

import (
	"strings"
	"testing"
)

// TestWhoami: a token learns who it speaks for (user, admin, its id) and
// nothing more; no token or a revoked one is a 401.
func TestWhoami(t *testing.T) {
	e := newEnv(t)
	var me struct {
		UserID  string `json:"user_id"`
		Admin   bool   `json:"admin"`
		TokenID string `json:"token_id"`
	}
	e.do("GET", "/whoami", e.tokA, "", 200, &me)
	if me.UserID != "alice" || me.Admin || me.TokenID == "" {
		t.Errorf("alice's whoami: %+v", me)
	}
	e.do("GET", "/whoami", e.tokB, "", 200, &me)
	if me.UserID != "bob" || me.Admin || me.TokenID != e.tokBID {
		t.Errorf("bob's whoami: %+v, want token id %s", me, e.tokBID)
	}
	resp, b := e.req("GET", "/whoami", e.admin, "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"admin":true`) {
		t.Errorf("the admin's whoami: %d %s", resp.StatusCode, b)
	}
	for _, tok := range []string{e.admin, e.tokA} {
		if strings.Contains(string(b), tok) {
			t.Fatal("whoami echoes a token")
		}
	}
	resp, b = e.req("GET", "/whoami", "", "")
	checkError(t, "whoami without a token", resp, b, 401)
	e.do("DELETE", "/tokens/"+e.tokBID, e.admin, "", 200, nil)
	resp, b = e.req("GET", "/whoami", e.tokB, "")
	checkError(t, "whoami with a revoked token", resp, b, 401)
}
