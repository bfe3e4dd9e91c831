// Package e2e is the end-to-end suite: it builds the hershy command, runs
// `hershy serve` as a real process against the real engine under runc and
// runsc, and takes the example programs through what a user does: deploy
// (HTTP API and `hershy deploy`), the WatcherAPI through the proxy,
// messages, /state across stop/start, restart, a Host restart and an
// upgrade, the sandbox seen from inside (testdata/probe), a crash loop,
// build failures and a clean delete. BenchmarkWatcherAPI measures the
// proxy against same-run baselines. The package holds only tests.
//
//	go test ./e2e                       (CI set: a missing engine fails)
//	go test -run '^$' -bench . ./e2e
package e2e
