package ui

import (
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hershyorg/hershy/internal/source"
)

// Deploy and upload: the browser sends a folder (input webkitdirectory, each
// file named by its path inside the folder) or plain files as a multipart
// form. The dashboard reads them as `hershy deploy` reads a directory
// (source.Collect: .hershignore and .dockerignore honoured, .git and
// non-text files left out, a top-level Dockerfile taken as the
// Dockerfile), then creates or updates the program through the API.

// upload is a parsed deploy or upload form.
type upload struct {
	files   map[string][]byte // by the path the browser gave
	fields  map[string]string
	skipped []string
}

// maxUploadFiles bounds how many files one upload may hold.
const maxUploadFiles = 5000

// readUpload reads the rest of a multipart form (authed has read and
// checked its first part, the CSRF field).
func readUpload(r *http.Request, req *request) (*upload, error) {
	mr := req.mr
	if mr == nil { // the CSRF token came as a header (a script's upload)
		var err error
		if mr, err = r.MultipartReader(); err != nil {
			return nil, errors.New("the upload is not a multipart form")
		}
	}
	u := &upload{files: map[string][]byte{}, fields: map[string]string{}}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return u, nil
		}
		if err != nil {
			return nil, uploadErr(err)
		}
		// The raw filename: Part.FileName keeps only its base name, and a
		// folder's files need their paths.
		_, params, _ := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
		fname, isFile := params["filename"]
		if !isFile {
			b, err := io.ReadAll(io.LimitReader(p, 64<<10))
			if err != nil {
				return nil, uploadErr(err)
			}
			u.fields[p.FormName()] = string(b)
			continue
		}
		if fname == "" { // an empty file input
			continue
		}
		if len(u.files) >= maxUploadFiles {
			return nil, fmt.Errorf("more than %d files in one upload", maxUploadFiles)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return nil, uploadErr(err)
		}
		u.files[strings.ReplaceAll(fname, "\\", "/")] = b
	}
}

func uploadErr(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fmt.Errorf("the upload is larger than %d MiB", maxUploadBody>>20)
	}
	return fmt.Errorf("reading the upload: %v", err)
}

// collect turns uploaded files into a program source. A folder upload
// names every file under the folder's own name ("bot/main.go"): that common
// first directory is dropped, so the folder's top is the source's root.
func (u *upload) collect() (map[string]string, []string, error) {
	if len(u.files) == 0 {
		return nil, nil, errors.New("choose a folder or some files to upload")
	}
	names := make([]string, 0, len(u.files))
	for n := range u.files {
		names = append(names, n)
	}
	prefix := commonDir(names)
	dir, err := os.MkdirTemp("", "hershy-ui-upload-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	for n, b := range u.files {
		rel := strings.TrimPrefix(n, prefix)
		clean := path.Clean(rel)
		if !filepath.IsLocal(filepath.FromSlash(clean)) || clean != rel {
			return nil, nil, fmt.Errorf("file name %q is not a plain relative path", n)
		}
		full := filepath.Join(dir, filepath.FromSlash(clean))
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			return nil, nil, fmt.Errorf("file %q: %v", n, err)
		}
		if err := os.WriteFile(full, b, 0o600); err != nil {
			return nil, nil, fmt.Errorf("file %q: %v", n, err)
		}
	}
	c, err := source.Collect(dir)
	if err != nil {
		return nil, nil, errors.New(strings.ReplaceAll(err.Error(), dir, "the upload"))
	}
	files := map[string]string(c.Files)
	if c.Dockerfile != "" {
		files[source.DockerfileName] = c.Dockerfile
	}
	return files, c.Skipped, nil
}

// readSource reads an upload form: the program source it holds, the files
// left out of it, and the form's other fields.
func readSource(r *http.Request, req *request) (files map[string]string, skipped []string, fields map[string]string, err error) {
	u, err := readUpload(r, req)
	if err != nil {
		return nil, nil, nil, err
	}
	files, skipped, err = u.collect()
	return files, skipped, u.fields, err
}

// mibField reads form field name, a size in MiB, as bytes; empty is 0.
func mibField(fields map[string]string, name, what string) (int64, error) {
	v := strings.TrimSpace(fields[name])
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64>>20 {
		return 0, fmt.Errorf("%s: %q is not a positive number of MiB", what, v)
	}
	return n << 20, nil
}

// commonDir is "d/" when every name starts with the same directory d.
func commonDir(names []string) string {
	first, _, ok := strings.Cut(names[0], "/")
	if !ok {
		return ""
	}
	for _, n := range names[1:] {
		if d, _, ok := strings.Cut(n, "/"); !ok || d != first {
			return ""
		}
	}
	return first + "/"
}

// sourceBody is POST /programs' body (the options the deploy form offers).
type sourceBody struct {
	SrcFiles      map[string]string `json:"src_files"`
	Network       bool              `json:"network,omitempty"`
	MemoryBytes   int64             `json:"memory_bytes,omitempty"`
	RestartPolicy string            `json:"restart_policy,omitempty"`
	StateBytes    int64             `json:"state_bytes,omitempty"`
}

func (h *Handler) deployPage(w http.ResponseWriter, r *http.Request, req *request) {
	h.render(w, r, req, http.StatusOK, "deploy", "Deploy", nil)
}

// deploy creates the program from the upload and starts it, then shows its
// build live (the build page lands on the program when it is Ready).
func (h *Handler) deploy(w http.ResponseWriter, r *http.Request, req *request) {
	fail := func(err error) { h.back(w, r, req, "/ui/deploy", err, "") }
	files, skipped, fields, err := readSource(r, req)
	if err != nil {
		fail(err)
		return
	}
	body := sourceBody{SrcFiles: files, Network: fields["network"] == "on", RestartPolicy: fields["restart_policy"]}
	if body.MemoryBytes, err = mibField(fields, "memory_mib", "memory"); err != nil {
		fail(err)
		return
	}
	if body.StateBytes, err = mibField(fields, "state_mib", "/state size"); err != nil {
		fail(err)
		return
	}
	ctx, cancel := pageCtx(r)
	defer cancel()
	var created struct {
		ProgramID string `json:"program_id"`
	}
	if err := req.api.call(ctx, http.MethodPost, "/programs", body, &created); err != nil {
		fail(fmt.Errorf("The Host refused the program: %w", err))
		return
	}
	if err := req.api.call(ctx, http.MethodPost, programPath(created.ProgramID, "/start"), nil, nil); err != nil {
		h.back(w, r, req, programURL(created.ProgramID), fmt.Errorf("Program created, but it could not start: %w", err), "")
		return
	}
	h.back(w, r, req, programURL(created.ProgramID, "/build"), nil, deployedNote(len(files), skipped))
}

func deployedNote(n int, skipped []string) string {
	msg := fmt.Sprintf("Uploaded %d file(s); building.", n)
	if len(skipped) > 0 {
		msg += " Left out (not text, or links): " + strings.Join(skipped, ", ") + "."
	}
	return msg
}

// uploadVersion replaces a program's source; with "restart" checked (the
// form's default) a running program is restarted, a stopped one started,
// so that the new version runs.
func (h *Handler) uploadVersion(w http.ResponseWriter, r *http.Request, req *request) {
	id := r.PathValue("id")
	fail := func(err error) { h.back(w, r, req, programURL(id), err, "") }
	files, skipped, fields, err := readSource(r, req)
	if err != nil {
		fail(err)
		return
	}
	ctx, cancel := pageCtx(r)
	defer cancel()
	var p program
	if err := req.api.call(ctx, http.MethodPut, programPath(id, "/source"), sourceBody{SrcFiles: files}, &p); err != nil {
		fail(fmt.Errorf("The Host refused the new version: %w", err))
		return
	}
	if fields["restart"] != "on" {
		h.back(w, r, req, programURL(id), nil, "New version stored; it runs from the next start.")
		return
	}
	verb := "/restart"
	if p.State == "Stopped" || p.State == "Error" || p.State == "Created" {
		verb = "/start"
	}
	if err := req.api.call(ctx, http.MethodPost, programPath(id, verb), nil, nil); err != nil {
		fail(fmt.Errorf("New version stored, but it could not start: %w", err))
		return
	}
	h.back(w, r, req, programURL(id, "/build"), nil, deployedNote(len(files), skipped))
}
