// Package hershtest is a test kit for programs written with hersh.
package hershtest
