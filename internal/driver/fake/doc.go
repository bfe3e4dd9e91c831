// Package fake is an in-memory driver.Driver, so the Host is tested
// without a container engine wherever the engine is not the subject (after
// Nomad's drivers/mock). It keeps the contract the Docker driver keeps —
// package drivertest checks both — and lets a test script what an engine
// and a program would do, deterministically:
//
//   - A container runs a Program: a Go function standing in for the image's
//     entrypoint, with the container's environment, mounts, limits, output
//     and an in-memory loopback (Process). Script covers the common cases:
//     print lines, serve a WatcherAPI, exit with a code (at once, after a
//     delay, or when told with Driver.Exit), ignore SIGTERM. Which Program
//     an image runs is set per image with SetProgram (images built FROM it
//     inherit it), or for every image with Options.Program; a Program can
//     also branch on the container's labels and environment.
//   - DialContext reaches a program's listeners over net.Pipe connections:
//     a WatcherAPI answers (Process.Serve), hangs (a listener that is never
//     accepted from, or a handler that blocks) or refuses (nothing listens).
//   - Hooks run before and after every call: they delay it, hold it until
//     the test lets it go, fail it, or turn its success into a lost reply.
//     Hooks.Build scripts build output and build failures.
//   - The test plays the kernel and the engine: Exit, OOMKill, Crash (every
//     event stream ends with an error and every call fails, as when the
//     engine dies; containers keep running, as under live-restore),
//     Restore, and BreakEvents (only the event streams break).
//   - Stats reports what a test scripted with SetUsage (CPU time, memory,
//     pids, network bytes; a Program adds CPU time with Process.UseCPU)
//     plus the memory the Program touched, against the container's limit.
//     It is deterministic: nothing grows unless a test or Program says so.
//   - RunJob runs a Program too, so a job can write into its writable
//     mounts (the Host's Go builds read the compiled binary from /out).
//   - ImportImage reads the layer as the engine would (a stream that is not
//     a tar, or ends inside a file, makes no image) and keeps the image's
//     settings and file list: its containers get its environment under
//     their own and its entrypoint as Args, and Process.Stat sees its
//     files' modes and owners.
//
// Nothing in its core paths uses a real socket or the machine's clock
// directly: waits are channel operations and plain time calls, so under
// testing/synctest the fake runs on the bubble's clock, a held call is
// durably blocked (synctest.Wait returns), and the goroutines it starts
// belong to the bubble. Each of them ends when its call's context ends or
// with Close, so a bubble's leak check also checks the fake. Mount
// sources, build contexts and files a Program writes into writable mounts
// are real paths on the machine's file system.
package fake
