package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// The API's OpenAPI description, which this client must keep to.
const descriptionPath = "../api/openapi.json"

// TestClientKeepsToDescription calls every method of the Client against a
// server that answers as the description says, and checks what each one
// sends and reads:
//
//   - the request's method and path are an operation of the description;
//     every query parameter is one the operation declares; a JSON body is
//     what the operation takes, every field (nested ones too) a property
//     of its schema;
//   - the answer is a sample of the operation's 2xx schema (every property
//     filled in), which the client must decode;
//   - every JSON field the client reads from an answer is a property of the
//     schema of some answer it is decoded from (one Go type may read
//     several answers: Token is what POST /tokens and GET /tokens give).
//
// A method added to the Client without a case here fails the test.
func TestClientKeepsToDescription(t *testing.T) {
	doc := loadDescription(t)
	rec := &recorder{t: t, doc: doc}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	c := New(srv.URL, "tok")
	ctx := context.Background()
	yes := true

	// Every call, what it reads from the answer (nil: nothing decoded, or
	// a stream the description has no schema for), and the call itself.
	type call struct {
		method string // the Client's method
		reads  reflect.Type
		do     func() error
	}
	full := SourceRequest{
		UserID: "alice", Dockerfile: "FROM scratch\n", SrcFiles: map[string]string{"main.go": "package main\n"},
		Network: &yes, MemoryBytes: 64 << 20, CPUs: 0.5, RestartPolicy: "always", Env: map[string]string{"A": "b"},
		StateBytes: 16 << 20,
	}
	calls := []call{
		{"CreateProgram", reflect.TypeFor[CreateResponse](), func() error { _, err := c.CreateProgram(ctx, full); return err }},
		{"UpdateSource", reflect.TypeFor[CreateResponse](), func() error { _, err := c.UpdateSource(ctx, "p1", full); return err }},
		{"ListPrograms", reflect.TypeFor[ProgramList](), func() error {
			_, err := c.ListPrograms(ctx, ListOptions{State: "Ready", UserID: "alice", Limit: 5, Offset: 10})
			return err
		}},
		{"GetProgram", reflect.TypeFor[Program](), func() error { _, err := c.GetProgram(ctx, "p1"); return err }},
		{"DeleteProgram", nil, func() error { return c.DeleteProgram(ctx, "p1") }},
		{"DeleteProgramKeepState", nil, func() error { return c.DeleteProgramKeepState(ctx, "p1") }},
		{"Start", reflect.TypeFor[ActionResponse](), func() error { _, err := c.Start(ctx, "p1"); return err }},
		{"Stop", reflect.TypeFor[ActionResponse](), func() error { _, err := c.Stop(ctx, "p1"); return err }},
		{"Restart", reflect.TypeFor[ActionResponse](), func() error { _, err := c.Restart(ctx, "p1"); return err }},
		{"GetSource", reflect.TypeFor[Source](), func() error { _, err := c.GetSource(ctx, "p1"); return err }},
		{"BuildLog", nil, func() error { return drain(c.BuildLog(ctx, "p1", true)) }},
		{"Logs", reflect.TypeFor[Logs](), func() error {
			_, err := c.Logs(ctx, "p1", LogOptions{Tail: 20, Since: "1h"})
			return err
		}},
		{"FollowLogs", nil, func() error {
			return c.FollowLogs(ctx, "p1", LogOptions{Tail: 20, Since: "2026-11-30T10:00:00Z"}, func(string) error { return nil })
		}},
		{"Proxy", reflect.TypeFor[map[string]any](), func() error {
			var out map[string]any
			return c.Proxy(ctx, http.MethodPut, "p1", "config", map[string]any{"x": 1}, &out)
		}},
		{"WatcherStatus", reflect.TypeFor[WatcherStatus](), func() error { _, err := c.WatcherStatus(ctx, "p1"); return err }},
		{"WatcherSignals", reflect.TypeFor[WatcherSignals](), func() error { _, err := c.WatcherSignals(ctx, "p1"); return err }},
		{"WatcherVarState", reflect.TypeFor[WatcherVarState](), func() error { _, err := c.WatcherVarState(ctx, "p1"); return err }},
		{"SendMessage", reflect.TypeFor[map[string]any](), func() error { _, err := c.SendMessage(ctx, "p1", "hi"); return err }},
		{"CreateToken", reflect.TypeFor[Token](), func() error { _, err := c.CreateToken(ctx, "bob"); return err }},
		{"ListTokens", reflect.TypeFor[struct {
			Tokens []Token `json:"tokens"`
		}](), func() error { _, err := c.ListTokens(ctx); return err }},
		{"RevokeToken", nil, func() error { return c.RevokeToken(ctx, "t1") }},
		{"Events", nil, func() error {
			s, err := c.Events(ctx, EventOptions{ProgramID: "p1", UserID: "alice"})
			if err != nil {
				return err
			}
			return s.Close()
		}},
		{"Releases", reflect.TypeFor[struct {
			Releases []Release `json:"releases"`
		}](), func() error { _, err := c.Releases(ctx, "p1"); return err }},
		{"Rollback", reflect.TypeFor[RollbackResponse](), func() error { _, err := c.Rollback(ctx, "p1", 2); return err }},
		{"ExportState", nil, func() error { return drain(c.ExportState(ctx, "p1")) }},
		{"ImportState", reflect.TypeFor[struct {
			Files int   `json:"files"`
			Bytes int64 `json:"bytes"`
		}](), func() error {
			_, _, err := c.ImportState(ctx, "p1", strings.NewReader("archive"))
			return err
		}},
		{"Stats", reflect.TypeFor[ProgramStats](), func() error {
			_, err := c.Stats(ctx, "p1", StatsOptions{Since: "1h", Resolution: "coarse"})
			return err
		}},
		{"CreateWebhook", reflect.TypeFor[Webhook](), func() error {
			_, err := c.CreateWebhook(ctx, WebhookRequest{URL: "https://example.org/h", ProgramID: "p1",
				Events: []string{"crash"}, CrashLoop: &CrashLoop{Crashes: 3, WindowSeconds: 60}})
			return err
		}},
		{"ListWebhooks", reflect.TypeFor[struct {
			Webhooks []Webhook `json:"webhooks"`
		}](), func() error { _, err := c.ListWebhooks(ctx); return err }},
		{"GetWebhook", reflect.TypeFor[Webhook](), func() error { _, err := c.GetWebhook(ctx, "w1"); return err }},
		{"DeleteWebhook", nil, func() error { return c.DeleteWebhook(ctx, "w1") }},
		{"Deliveries", reflect.TypeFor[struct {
			Deliveries []Delivery `json:"deliveries"`
		}](), func() error { _, err := c.Deliveries(ctx, "w1", 10); return err }},
		{"PingWebhook", reflect.TypeFor[struct {
			EventID string `json:"event_id"`
		}](), func() error { _, err := c.PingWebhook(ctx, "w1"); return err }},
	}

	// Every exported method of the Client is called.
	covered := map[string]bool{}
	for _, cl := range calls {
		covered[cl.method] = true
	}
	ct := reflect.TypeFor[*Client]()
	for i := range ct.NumMethod() {
		if m := ct.Method(i).Name; !covered[m] {
			t.Errorf("Client.%s is not checked against the description: add it to this test's calls", m)
		}
	}

	reads := newReadCheck(doc)
	for _, cl := range calls {
		rec.begin(cl.method)
		err := cl.do()
		sent, ops := rec.end()
		if err != nil {
			t.Errorf("%s: %v", cl.method, err)
		}
		if sent == 0 {
			t.Errorf("%s sent no request", cl.method)
		}
		if cl.reads == nil {
			continue
		}
		for _, op := range ops {
			if op.schema == nil {
				t.Errorf("%s reads a %s from %s, whose answer has no JSON schema", cl.method, cl.reads, op.name)
				continue
			}
			reads.walk(cl.reads, op.schema, cl.method+" "+op.name)
		}
	}
	for _, miss := range reads.missing() {
		if why, ok := knownExtraReads[miss]; ok {
			t.Logf("%s: read but never sent (%s)", miss, why)
			continue
		}
		t.Errorf("%s: the client reads a field no answer it decodes has in the description", miss)
	}
}

// knownExtraReads are fields the client reads that no answer has, each
// with why it is harmless.
// None today: client.Source's dockerfile field, which no answer has, was
// removed (a Dockerfile source comes as the file "Dockerfile").
var knownExtraReads = map[string]string{}

func drain(rc io.ReadCloser, err error) error {
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	return err
}

// ---- the description ----

type description struct {
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas    map[string]*schema        `json:"schemas"`
		Parameters map[string]*parameter     `json:"parameters"`
		Responses  map[string]*responseOrRef `json:"responses"`
	} `json:"components"`
}

type schema struct {
	Ref                  string             `json:"$ref"`
	Type                 string             `json:"type"`
	Format               string             `json:"format"`
	Enum                 []any              `json:"enum"`
	Properties           map[string]*schema `json:"properties"`
	AdditionalProperties json.RawMessage    `json:"additionalProperties"`
	Items                *schema            `json:"items"`
}

type parameter struct {
	Ref  string `json:"$ref"`
	Name string `json:"name"`
	In   string `json:"in"`
}

type mediaType struct {
	Schema *schema `json:"schema"`
}

type responseOrRef struct {
	Ref     string               `json:"$ref"`
	Content map[string]mediaType `json:"content"`
}

type operation struct {
	Parameters  []*parameter `json:"parameters"`
	RequestBody *struct {
		Content map[string]mediaType `json:"content"`
	} `json:"requestBody"`
	Responses map[string]*responseOrRef `json:"responses"`
}

func loadDescription(t *testing.T) *description {
	t.Helper()
	b, err := os.ReadFile(descriptionPath)
	if err != nil {
		t.Fatal(err)
	}
	var d description
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", descriptionPath, err)
	}
	return &d
}

// resolve follows a schema's $ref.
func (d *description) resolve(s *schema) *schema {
	for s != nil && s.Ref != "" {
		s = d.Components.Schemas[strings.TrimPrefix(s.Ref, "#/components/schemas/")]
	}
	return s
}

// additional is the schema of an object's other properties: nil when
// none are allowed, an empty schema for any.
func (d *description) additional(s *schema) *schema {
	raw := bytes.TrimSpace(s.AdditionalProperties)
	switch {
	case len(raw) == 0 || string(raw) == "false":
		return nil
	case string(raw) == "true":
		return &schema{}
	}
	var a schema
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil
	}
	return d.resolve(&a)
}

// catchAll are the path templates whose last parameter may hold slashes:
// the API's route is {path...}, and the description says the proxy's
// {path} may be sent with its slashes as they are.
var catchAll = map[string]bool{"/programs/{id}/proxy/{path}": true}

// match finds the operation serving method and the request's escaped
// path, and its template.
func (d *description) match(method, escapedPath string) (string, *operation, error) {
	segs := strings.Split(strings.TrimPrefix(escapedPath, "/"), "/")
	var templates []string
	for tmpl := range d.Paths {
		templates = append(templates, tmpl)
	}
	sort.Strings(templates)
	for _, tmpl := range templates {
		if !matchTemplate(tmpl, segs) {
			continue
		}
		raw, ok := d.Paths[tmpl][strings.ToLower(method)]
		if !ok {
			return tmpl, nil, fmt.Errorf("%s has no %s operation", tmpl, method)
		}
		var op operation
		if err := json.Unmarshal(raw, &op); err != nil {
			return tmpl, nil, err
		}
		return tmpl, &op, nil
	}
	return "", nil, fmt.Errorf("no path of the description matches %s", escapedPath)
}

func matchTemplate(tmpl string, segs []string) bool {
	ts := strings.Split(strings.TrimPrefix(tmpl, "/"), "/")
	if len(segs) < len(ts) || (len(segs) > len(ts) && !catchAll[tmpl]) {
		return false
	}
	for i, t := range ts {
		isParam := strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}")
		switch {
		case isParam && segs[i] == "":
			return false
		case isParam:
		case t != segs[i]:
			return false
		}
	}
	return true
}

// queryParams are the names of the operation's query parameters.
func (d *description) queryParams(op *operation) []string {
	var names []string
	for _, p := range op.Parameters {
		if p.Ref != "" {
			p = d.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
		}
		if p != nil && p.In == "query" {
			names = append(names, p.Name)
		}
	}
	return names
}

// success is the operation's first 2xx answer: its status, content type
// and schema (nil when it has no content).
func (d *description) success(op *operation) (int, string, *schema) {
	var codes []string
	for code := range op.Responses {
		if strings.HasPrefix(code, "2") {
			codes = append(codes, code)
		}
	}
	sort.Strings(codes)
	if len(codes) == 0 {
		return 0, "", nil
	}
	r := op.Responses[codes[0]]
	for r.Ref != "" {
		r = d.Components.Responses[strings.TrimPrefix(r.Ref, "#/components/responses/")]
	}
	var status int
	fmt.Sscan(codes[0], &status)
	if m, ok := r.Content["application/json"]; ok {
		return status, "application/json", d.resolve(m.Schema)
	}
	for ct := range r.Content {
		return status, ct, nil
	}
	return status, "", nil
}

// ---- the server ----

// recorder answers every request as the description says and records the
// operations a call reached.
type recorder struct {
	t   *testing.T
	doc *description

	mu     sync.Mutex
	method string
	sent   int // requests since begin
	ops    []reached
}

type reached struct {
	name   string  // "GET /programs/{id}"
	schema *schema // of the answer's JSON (nil: not JSON)
}

func (r *recorder) begin(method string) {
	r.mu.Lock()
	r.method, r.sent, r.ops = method, 0, nil
	r.mu.Unlock()
}

func (r *recorder) end() (sent int, ops []reached) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent, r.ops
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	caller := r.method
	r.sent++
	r.mu.Unlock()
	t := r.t
	tmpl, op, err := r.doc.match(req.Method, req.URL.EscapedPath())
	if err != nil {
		t.Errorf("%s: %s %s: %v", caller, req.Method, req.URL.EscapedPath(), err)
		http.Error(w, err.Error(), http.StatusNotImplemented)
		return
	}
	name := req.Method + " " + tmpl
	declared := r.doc.queryParams(op)
	for key := range req.URL.Query() {
		if !slices.Contains(declared, key) {
			t.Errorf("%s: %s sends the query parameter %q, which the description does not declare (it has %v)", caller, name, key, declared)
		}
	}
	body, _ := io.ReadAll(req.Body)
	if len(body) > 0 {
		r.checkBody(caller, name, op, req.Header.Get("Content-Type"), body)
	}
	status, ct, s := r.doc.success(op)
	r.mu.Lock()
	r.ops = append(r.ops, reached{name: name, schema: s})
	r.mu.Unlock()
	if status == 0 {
		t.Errorf("%s: %s has no 2xx answer in the description", caller, name)
		status = http.StatusOK
	}
	if ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(status)
	if s != nil {
		json.NewEncoder(w).Encode(r.doc.sample(s, 0))
	}
}

// checkBody checks a request body against the operation's.
func (r *recorder) checkBody(caller, name string, op *operation, contentType string, body []byte) {
	t := r.t
	if op.RequestBody == nil {
		t.Errorf("%s: %s sends a body; the description takes none", caller, name)
		return
	}
	m, ok := op.RequestBody.Content[contentType]
	if !ok {
		t.Errorf("%s: %s sends %s; the description takes %v", caller, name, contentType, slices.Sorted(maps.Keys(op.RequestBody.Content)))
		return
	}
	if contentType != "application/json" {
		return
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Errorf("%s: %s sends invalid JSON: %v", caller, name, err)
		return
	}
	r.doc.checkValue(t, caller+": "+name+" request", v, r.doc.resolve(m.Schema))
}

// checkValue checks that every field of v is a property of s, down the
// objects and arrays.
func (d *description) checkValue(t *testing.T, where string, v any, s *schema) {
	s = d.resolve(s)
	if s == nil {
		return
	}
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if p, ok := s.Properties[k]; ok {
				d.checkValue(t, where+"."+k, x, p)
			} else if a := d.additional(s); a != nil {
				d.checkValue(t, where+"."+k, x, a)
			} else {
				t.Errorf("%s: the field %q is not in the description's schema", where, k)
			}
		}
	case []any:
		for _, x := range v {
			d.checkValue(t, where+"[]", x, s.Items)
		}
	}
}

// sampleTime is every date-time of a sample answer.
var sampleTime = time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)

// sample is a value of schema s with every property filled in.
func (d *description) sample(s *schema, depth int) any {
	s = d.resolve(s)
	if s == nil || depth > 8 {
		return nil
	}
	if len(s.Enum) > 0 {
		return s.Enum[0]
	}
	switch s.Type {
	case "object", "":
		out := map[string]any{}
		for k, p := range s.Properties {
			out[k] = d.sample(p, depth+1)
		}
		if a := d.additional(s); a != nil && len(s.Properties) == 0 {
			out["key"] = d.sample(a, depth+1)
			if out["key"] == nil {
				out["key"] = "value"
			}
		}
		return out
	case "array":
		return []any{d.sample(s.Items, depth+1)}
	case "string":
		if s.Format == "date-time" {
			return sampleTime.Format(time.RFC3339)
		}
		return "x"
	case "integer":
		return 1
	case "number":
		return 1.5
	case "boolean":
		return true
	}
	return nil
}

// ---- what the client reads ----

// readCheck walks Go types against answer schemas and remembers, for
// every JSON field of every struct, whether some schema has it.
type readCheck struct {
	doc   *description
	found map[string]bool // "pkg.Type.field" -> in some schema
}

func newReadCheck(doc *description) *readCheck {
	return &readCheck{doc: doc, found: map[string]bool{}}
}

var (
	rawType  = reflect.TypeFor[json.RawMessage]()
	timeType = reflect.TypeFor[time.Time]()
)

func (rc *readCheck) walk(t reflect.Type, s *schema, where string) {
	s = rc.doc.resolve(s)
	if s == nil {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == rawType || t == timeType {
		return
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		if s.Items != nil {
			rc.walk(t.Elem(), s.Items, where)
		}
	case reflect.Map:
		if a := rc.doc.additional(s); a != nil {
			rc.walk(t.Elem(), a, where)
		}
	case reflect.Struct:
		free := rc.doc.additional(s)
		for _, f := range jsonFields(t) {
			key := typeName(t) + "." + f.name
			p, ok := s.Properties[f.name]
			if !ok && free != nil {
				p, ok = free, true
			}
			if ok {
				rc.found[key] = true
				rc.walk(f.typ, p, where+"."+f.name)
			} else if _, seen := rc.found[key]; !seen {
				rc.found[key] = false
			}
		}
	}
}

// missing lists the fields no schema had, sorted.
func (rc *readCheck) missing() []string {
	var out []string
	for k, ok := range rc.found {
		if !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

type jsonField struct {
	name string
	typ  reflect.Type
}

// jsonFields are the fields encoding/json reads into t, embedded structs'
// included.
func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				out = append(out, jsonFields(et)...)
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, jsonField{name, f.Type})
	}
	return out
}

func typeName(t reflect.Type) string {
	if t.Name() == "" {
		return t.String()
	}
	pkg := t.PkgPath()
	return pkg[strings.LastIndex(pkg, "/")+1:] + "." + t.Name()
}
