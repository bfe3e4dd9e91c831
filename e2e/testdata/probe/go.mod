module github.com/hershyorg/hershy/e2e/testdata/probe

go 1.25

require github.com/hershyorg/hershy/hersh v0.0.0

replace github.com/hershyorg/hershy/hersh => ../../../hersh
