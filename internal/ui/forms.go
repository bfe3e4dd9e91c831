package ui

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
)

// Request body limits. An upload is the program's source: the API takes
// at most 32 MiB of JSON, so a little more of multipart is enough.
const (
	maxFormBody   = 1 << 20
	maxUploadBody = 40 << 20
)

type multipartReader = *multipart.Reader

// csrfValue finds the CSRF token a state-changing request carries: the
// X-CSRF-Token header (the dashboard's fetches), the csrf field of a form,
// or the first part of a multipart upload (our upload forms put it first;
// reading only that part means a refused upload is not read further). For
// an upload the multipart reader is returned, positioned after that part.
func csrfValue(w http.ResponseWriter, r *http.Request) (string, multipartReader, error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if v := r.Header.Get(csrfHeader); v != "" {
		if mt == "application/x-www-form-urlencoded" { // a script posting a form
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
			if err := r.ParseForm(); err != nil {
				return "", nil, err
			}
		}
		return v, nil, nil
	}
	switch mt {
	case "application/x-www-form-urlencoded":
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
		if err := r.ParseForm(); err != nil {
			return "", nil, err
		}
		return r.PostForm.Get(csrfField), nil, nil
	case "multipart/form-data":
		r.Body = http.MaxBytesReader(w, r.Body, maxUploadBody)
		mr, err := r.MultipartReader()
		if err != nil {
			return "", nil, err
		}
		p, err := mr.NextPart()
		if err != nil {
			return "", nil, err
		}
		if p.FormName() != csrfField {
			return "", nil, errors.New("the first part of an upload must be the csrf field")
		}
		b, err := io.ReadAll(io.LimitReader(p, 256))
		if err != nil {
			return "", nil, err
		}
		return string(b), mr, nil
	}
	return "", nil, errors.New("no CSRF token")
}

func writeJSONBody(w io.Writer, v any) {
	_ = json.NewEncoder(w).Encode(v)
}
