package ui

import "html/template"

// highlighted is a source file as HTML: escaped, highlighted by package
// highlight for Go and Dockerfiles once it is merged.
func highlighted(name, text string) template.HTML {
	return template.HTML(template.HTMLEscapeString(text))
}
