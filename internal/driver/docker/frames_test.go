package docker

import (
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/docker/docker/pkg/stdcopy"
)

// frame is one frame of the engine's multiplexed stream.
func frame(stream byte, payload string) []byte {
	b := make([]byte, 8, 8+len(payload))
	b[0] = stream
	binary.BigEndian.PutUint32(b[4:], uint32(len(payload)))
	return append(b, payload...)
}

func frames(fs ...[]byte) []byte { return bytes.Join(fs, nil) }

func TestFrameReader(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stream  []byte
		want    string
		wantErr string // "" for a clean end
	}{
		{name: "empty", stream: nil, want: ""},
		{name: "stdout and stderr in order", stream: frames(frame(1, "out 1\n"), frame(2, "err 1\n"), frame(1, "out 2\n")), want: "out 1\nerr 1\nout 2\n"},
		{name: "a zero-length frame", stream: frames(frame(1, "a"), frame(2, ""), frame(1, "b")), want: "ab"},
		{name: "a large frame", stream: frame(1, strings.Repeat("x", 100<<10)), want: strings.Repeat("x", 100<<10)},
		{name: "the engine's error", stream: frames(frame(1, "before\n"), frame(3, "boom")), want: "before\n", wantErr: `the engine reported: "boom"`},
		{name: "an unknown stream", stream: frames(frame(1, "ok"), frame(9, "??")), want: "ok", wantErr: "unknown frame type 9"},
		{name: "cut inside a header", stream: append(frame(1, "ok"), 1, 0, 0), want: "ok", wantErr: "cut inside a frame header"},
		{name: "cut inside a payload", stream: frame(1, "whole")[:10], want: "wh", wantErr: "cut inside a frame"},
		// A declared length of 4 GiB with one byte behind it: the reader
		// neither allocates for it nor waits past the stream's end.
		{name: "a huge declared length", stream: []byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 'a'}, want: "a", wantErr: "cut inside a frame"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := tc.stream
			for _, read := range []struct {
				name string
				wrap func(io.Reader) io.Reader
			}{{"whole", func(r io.Reader) io.Reader { return r }}, {"a byte at a time", iotest.OneByteReader}, {"data with EOF", iotest.DataErrReader}} {
				r := &frameReader{body: io.NopCloser(read.wrap(bytes.NewReader(stream)))}
				got, err := io.ReadAll(r)
				if string(got) != tc.want {
					t.Errorf("%s: read %.60q, want %.60q", read.name, got, tc.want)
				}
				switch {
				case tc.wantErr == "" && err != nil:
					t.Errorf("%s: error %v, want a clean end", read.name, err)
				case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
					t.Errorf("%s: error %v, want one saying %q", read.name, err, tc.wantErr)
				}
				if n, again := r.Read(make([]byte, 8)); n != 0 || again == nil {
					t.Errorf("%s: a read after the end gave %d, %v", read.name, n, again)
				}
			}
		})
	}
}

// FuzzFrameReader: on any stream, the reader gives what the engine's own
// parser (stdcopy, as the docker CLI reads it) gives for stdout and stderr
// together, and fails where it fails.
func FuzzFrameReader(f *testing.F) {
	f.Add(frames(frame(1, "out\n"), frame(2, "err\n")))
	f.Add(frames(frame(1, "a"), frame(3, "boom")))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 5, 'a', 'b'})
	f.Add([]byte{7, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, stream []byte) {
		if cutFrame(stream) {
			// A frame that claims more bytes than the stream holds: stdcopy
			// allocates what it claims (up to 4 GiB, which sank the fuzzer
			// once), the reader must not; it says the stream was cut.
			got, err := io.ReadAll(&frameReader{body: io.NopCloser(bytes.NewReader(stream))})
			if err == nil || len(got) > len(stream) {
				t.Fatalf("a cut frame: %d bytes, %v", len(got), err)
			}
			return
		}
		var want bytes.Buffer
		_, werr := stdcopy.StdCopy(&want, &want, bytes.NewReader(stream))
		got, gerr := io.ReadAll(&frameReader{body: io.NopCloser(bytes.NewReader(stream))})
		if werr == nil && gerr != nil || werr != nil && gerr == nil {
			// stdcopy ends quietly on a stream cut inside a frame (an error
			// frame included); the reader says so. Anything else must agree.
			if !(werr == nil && gerr != nil && (strings.Contains(gerr.Error(), "cut inside") || strings.Contains(gerr.Error(), "engine reported"))) {
				t.Fatalf("stdcopy error %v, reader error %v", werr, gerr)
			}
		}
		if !bytes.HasPrefix(want.Bytes(), got) && !bytes.HasPrefix(got, want.Bytes()) {
			t.Fatalf("reader gave %q, stdcopy %q", got, want.Bytes())
		}
		if werr == nil && gerr == nil && !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("reader gave %q, stdcopy %q", got, want.Bytes())
		}
	})
}

// cutFrame tells whether a frame of stream claims more bytes than follow it.
func cutFrame(stream []byte) bool {
	for pos := 0; pos+8 <= len(stream); {
		size := int(binary.BigEndian.Uint32(stream[pos+4 : pos+8]))
		if size > len(stream)-pos-8 {
			return true
		}
		pos += 8 + size
	}
	return false
}
