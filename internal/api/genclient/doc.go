// Package genclient is a Go client of the Host's API generated from its
// OpenAPI description (internal/api/openapi.json) by oapi-codegen, exactly
// as anyone would generate one from GET /openapi.json. It is not the CLI's
// client (internal/client, written by hand): it is here to prove that the
// description is complete and correct enough to generate a working client.
// e2e's TestGeneratedClient drives a real Host through the main workflow with
// it, and TestGeneratedClientFresh fails when client.gen.go is not what the
// generator makes of the description now.
//
// Regenerate after changing the description:
//
//	go generate ./internal/api/genclient
//
// The generator is run at a pinned version with `go run pkg@version`, so it
// is not a requirement of the main module: only its small runtime
// (github.com/oapi-codegen/runtime), which the generated code imports, is.
//
// Operations and types are named after the description's operationIds and
// schemas: (*Client).CreateProgram, (*ClientWithResponses).GetProgramWithResponse,
// Program, ProgramBody. The proxy's {path} is one parameter, sent with its
// slashes escaped ("watcher/status" as watcher%2Fstatus), which the Host
// reads as the same path.
package genclient

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2 -config oapi-codegen.yaml ../openapi.json
