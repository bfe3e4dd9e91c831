module github.com/hershyorg/hershy

go 1.25
