module github.com/hershyorg/hershy/hersh

go 1.25
