// Package enginetest holds the Host's tests whose subject is the real
// container engine or the sandbox, which the fake engine of the Host's
// other tests cannot stand for: a real Go compile in the build sandbox,
// the sandbox contract as the engine applies it, the WatcherAPI reached
// through a container's network namespace, exits on the engine's event
// stream, /state's size cap hit from inside a container, and a Host
// killed with SIGKILL that re-adopts real containers.
//
// Each test runs under runc and runsc (testenv.Engine): outside CI it is
// skipped when no engine answers; in CI (the CI variable set) a missing
// engine fails it. The package has no code besides its tests.
package enginetest
