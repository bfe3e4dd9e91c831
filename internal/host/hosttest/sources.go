package hosttest

import (
	_ "embed"
	"fmt"

	"github.com/hershyorg/hershy/internal/host"
	"github.com/hershyorg/hershy/internal/source"
)

// The test programs' sources, shared by the tests on the fake engine and on
// the real one. On the real engine they are compiled in the build sandbox;
// on the fake one a marker line in main.go ("//hosttest:program <name>")
// names the fake Program that runs in place of the binary (see NewFake).

//go:embed testdata/counter/main.go
var counterMain string

//go:embed testdata/seed/main.go
var seedMain string

// frameworkGoMod is a go.mod requiring the hersh framework at a version
// that was never published: the Host provides its own copy.
func frameworkGoMod(module string) string {
	return "module " + module + "\n\ngo 1.25\n\nrequire github.com/hershyorg/hershy/hersh v0.0.0\n"
}

// CounterSource is testdata/counter, a hersh program that ticks, keeps a
// counter in /state and exits with code 3 on the message "crash" (Counter
// on the fake engine). A variant above 0 adds a comment naming it, so
// that programs of one test get distinct build ids.
func CounterSource(variant int) source.Files {
	main := counterMain
	if variant > 0 {
		main += fmt.Sprintf("\n// variant %d\n", variant)
	}
	return source.Files{"main.go": main, "go.mod": frameworkGoMod("example.com/counter")}
}

// SeedSource is testdata/seed, a program written to the seed's WatcherAPI
// contract with net/http only (no /watcher/ready), which logs every
// request it receives with the credentials it was given (Seed on the fake
// engine).
func SeedSource() source.Files {
	return source.Files{"main.go": seedMain, "go.mod": "module example.com/seed\n\ngo 1.25\n"}
}

// AppProgram is user's Dockerfile program whose one file, app, holds the
// given bytes: on the fake engine the image's content, which the engine's
// Program runs in place of a binary.
func AppProgram(user, app string) host.CreateRequest {
	return host.CreateRequest{
		UserID:     user,
		Dockerfile: "FROM scratch\nCOPY app /app\nENTRYPOINT [\"/app\"]\n",
		Files:      source.Files{"app": app},
	}
}
