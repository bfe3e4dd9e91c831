package highlight_test

import (
	"fmt"
	"html/template"
	"os"

	"github.com/hershyorg/hershy/internal/ui/highlight"
)

func ExampleGo() {
	fmt.Println(highlight.Go([]byte("x := len(\"<b>\") // count\n")))
	// Output:
	// <pre class="hl"><code><span class="hl-line" id="L1"><a class="hl-ln" href="#L1" data-line="1" aria-hidden="true" tabindex="-1"></a>x := <span class="hl-bi">len</span>(<span class="hl-str">&#34;&lt;b&gt;&#34;</span>) <span class="hl-com">// count</span></span>
	// </code></pre>
}

// The source viewer puts a file into a page template; the highlighted HTML
// is template.HTML, so it is placed as it is, and the file's own text is
// already escaped inside it.
func ExampleFile() {
	page := template.Must(template.New("").Parse(`<section>{{.}}</section>`))
	src := []byte("FROM scratch\nCOPY app /app\n")
	if err := page.Execute(os.Stdout, highlight.File("Dockerfile", src)); err != nil {
		fmt.Println(err)
	}
	// Output:
	// <section><pre class="hl"><code><span class="hl-line" id="L1"><a class="hl-ln" href="#L1" data-line="1" aria-hidden="true" tabindex="-1"></a><span class="hl-kw">FROM</span> scratch</span>
	// <span class="hl-line" id="L2"><a class="hl-ln" href="#L2" data-line="2" aria-hidden="true" tabindex="-1"></a><span class="hl-kw">COPY</span> app /app</span>
	// </code></pre></section>
}
