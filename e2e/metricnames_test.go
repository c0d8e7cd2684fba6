package e2e

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// metricConstructors maps the VictoriaMetrics constructors to the type they
// expose. NewHistogram and NewSummary are refused: their vmrange buckets and
// quantiles are not Prometheus histograms.
var metricConstructors = map[string]string{
	"NewCounter": "counter", "GetOrCreateCounter": "counter",
	"NewFloatCounter": "counter", "GetOrCreateFloatCounter": "counter",
	"NewGauge": "gauge", "GetOrCreateGauge": "gauge",
	"NewPrometheusHistogram": "histogram", "NewPrometheusHistogramExt": "histogram",
	"GetOrCreatePrometheusHistogram": "histogram", "GetOrCreatePrometheusHistogramExt": "histogram",
	"NewHistogram": "vm_histogram", "GetOrCreateHistogram": "vm_histogram",
	"NewSummary": "summary", "NewSummaryExt": "summary", "GetOrCreateSummary": "summary", "GetOrCreateSummaryExt": "summary",
}

var literalLabelRe = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)=`)

// TestMetricNamesInSource applies the naming rules to every metric the
// source declares, also those /metrics shows only once they are first used
// (a counter created on the first drop of its reason), so a bad name fails CI
// even when the traffic of TestMetricsAfterKnownTraffic never reaches it.
func TestMetricNamesInSource(t *testing.T) {
	fset := token.NewFileSet()
	found := 0
	var bad []string
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != ".." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "e2e" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			typ, ok := metricConstructors[sel.Sel.Name]
			if !ok {
				return true
			}
			text, ok := metricNameText(call.Args[0])
			if !ok {
				return true // not a metric name we can read (not a VictoriaMetrics call)
			}
			found++
			pos := fset.Position(call.Pos())
			name, labels, _ := strings.Cut(text, "{")
			if !strings.HasPrefix(name, "relay_") {
				return true // e.g. an unrelated NewCounter; relay metrics start with relay_
			}
			// One synthetic sample per declaration, with each label set
			// to a bounded placeholder: values are checked on the real
			// exposition; here the name, type and label names are.
			fam := &family{name: name, typ: typ, help: true}
			s := sample{name: name, labels: map[string]string{}}
			for _, m := range literalLabelRe.FindAllStringSubmatch(labels, -1) {
				s.labels[m[1]] = "x"
			}
			switch typ {
			case "histogram":
				for _, le := range []string{"1", "+Inf"} {
					b := sample{name: name + "_bucket", labels: map[string]string{"le": le}}
					for k, v := range s.labels {
						b.labels[k] = v
					}
					fam.samples = append(fam.samples, b)
				}
				fam.samples = append(fam.samples, sample{name: name + "_sum", labels: s.labels}, sample{name: name + "_count", labels: s.labels})
			default:
				fam.samples = append(fam.samples, s)
			}
			for _, v := range lintExposition(&exposition{families: map[string]*family{name: fam}}) {
				bad = append(bad, pos.String()+": "+v)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found < 90 {
		t.Fatalf("found %d metric declarations in the source, expected the relay's ~100: the scan is broken", found)
	}
	for _, b := range bad {
		t.Error(b)
	}
}

// metricNameText returns the literal text of a metric name argument: a string
// literal, the literal parts of a concatenation, or the format of an
// fmt.Sprintf; false when the argument holds no literal.
func metricNameText(e ast.Expr) (string, bool) {
	switch x := e.(type) {
	case *ast.BasicLit:
		if x.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(x.Value)
		return s, err == nil
	case *ast.BinaryExpr:
		l, lok := metricNameText(x.X)
		r, rok := metricNameText(x.Y)
		if !lok {
			return "", false // the name must start with a literal
		}
		if rok {
			return l + r, true
		}
		return l, true
	case *ast.CallExpr:
		if sel, ok := x.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Sprintf" && len(x.Args) > 0 {
			return metricNameText(x.Args[0])
		}
	case *ast.ParenExpr:
		return metricNameText(x.X)
	}
	return "", false
}
