// Package dockerfile reads a user's Dockerfile the way the engine reads it
// and decides whether the Host may build it: an allowlist of instructions
// and flags, and the images the build would take from the engine, so the
// Host can check that each is the user's own. It is pure text rules: it
// needs no engine.
//
// # The engine's own parser
//
// A Dockerfile is read with BuildKit's Dockerfile parser used as a library
// (frontend/dockerfile/parser and frontend/dockerfile/instructions), not
// with a reader of the Host's own: any difference between two readers is a
// way to show the policy one Dockerfile and the engine another (an empty
// continuation line, which an earlier hand-written reader took as the end
// of an instruction, let `COPY \` + blank line + `--from=<another user's
// image>` through). The version is github.com/moby/buildkit v0.8.3: the
// engine the Host runs on is Docker 20.10 (20.10.24 here), whose legacy
// builder vendors BuildKit's v0.8 Dockerfile parser and calls
// parser.Parse and instructions.Parse. Checked on this machine's dockerd:
// its vendored parser and instructions packages have exactly v0.8's
// functions and none of v0.9's (no heredoc parsing, which the legacy
// builder does not know). v0.8.3 is the newest v0.8 release the module
// proxy serves. A newer parser would read heredocs the engine does not,
// which is the kind of difference this package exists to close. The
// real-engine tests (engine_test.go) check the readings agree.
//
// # What is refused
//
// Anything the parser warns about (an empty continuation line: the engine
// skips it and joins the next line to the instruction), anything the
// instructions package cannot parse, and anything the policy cannot decide
// or the Host does not want a build to do:
//
//   - RUN: a build step runs code in an ordinary container of the engine's
//     default runtime, outside gVisor and the program's limits (as root if
//     the Dockerfile says USER root). The Host compiles Go source itself.
//   - ONBUILD: a trigger whose instructions run in a later build FROM the
//     image, where this policy never sees them.
//   - ADD: a remote ADD makes dockerd itself fetch a URL from the Host's
//     network (loopback included); a local ADD makes dockerd unpack archives
//     as root. COPY does what a program needs.
//   - VOLUME: an anonymous volume would be a writable place outside /state.
//   - HEALTHCHECK: the engine would exec into the container on its own
//     schedule, outside the program's limits; the Host probes readiness
//     itself (the driver also disables any health check an image carries).
//   - SHELL: it only changes how RUN and the shell forms of CMD and
//     ENTRYPOINT are wrapped; write those in JSON form.
//   - a `# syntax=` directive: the legacy builder ignores it, BuildKit would
//     load a frontend image it names; refused so a Dockerfile means one
//     thing.
//   - FROM --platform, and every flag not listed below.
//   - variables ($) in FROM or COPY --from: which image they name depends on
//     build arguments and expansion rules the policy would have to model;
//     quotes and escapes in an image reference, for the same reason.
//   - image ids and hex-only references (the engine resolves hex by id
//     prefix, so two digits can name another user's image), and anything
//     that is not a valid image reference.
//   - LABEL keys under org.hershy. (the Host's own labels, which reconcile
//     and the event loop trust), and label keys holding variables, quotes or
//     escapes (the engine expands keys, so they could become one).
//   - instructions the parser does not know.
//
// # What is allowed, and why it is safe
//
//   - FROM <image> [AS <name>]: the Host checks every image reported in
//     Result.Bases (scratch and earlier stages are not images).
//   - COPY [--from=<stage|index|image>] [--chown=<user>] <src>... <dest>:
//     copies files of the build context (the program's own source, checked
//     by internal/source) or of a stage or an image the Host checks. The
//     engine resolves the paths inside the context and the image; no code
//     runs. --chown only sets owners inside the image.
//   - ENV, ARG: variables for later instructions; the Host passes no build
//     arguments, and variables are refused where they could choose an
//     image. The Host's own environment overrides the image's at run time.
//   - LABEL, MAINTAINER: metadata (keys under org.hershy. refused).
//   - WORKDIR: the engine creates the directory itself; no code runs.
//   - USER: the Host runs every program as its own non-root user anyway.
//   - ENTRYPOINT, CMD: what the program runs, inside its sandbox.
//   - EXPOSE: metadata; the Host publishes no port.
//   - STOPSIGNAL: the Host sets the stop signal itself at run time.
//   - `# escape=`: the parser applies it exactly as the engine does.
package dockerfile
