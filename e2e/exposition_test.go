package e2e

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// This file is a strict reader of the Prometheus text format (0.0.4) and the
// relay's naming rules, applied to every metric /metrics serves. A metric
// added later with a bad name, a unit other than seconds or bytes, an
// unbounded-looking label, or a VictoriaMetrics-only histogram fails it.

// sample is one line of the exposition.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// key is the sample's name and labels in a canonical order.
func (s sample) key() string { return seriesKey(s.name, s.labels) }

func seriesKey(name string, labels map[string]string) string {
	if len(labels) == 0 {
		return name
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", k, labels[k])
	}
	b.WriteByte('}')
	return b.String()
}

// family is a metric family: its TYPE and samples.
type family struct {
	name    string
	typ     string
	help    bool
	samples []sample
}

// exposition is a parsed scrape.
type exposition struct {
	families map[string]*family
	series   map[string]float64 // sample key → value
}

func (e *exposition) get(name string, labels ...string) (float64, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		m[labels[i]] = labels[i+1]
	}
	v, ok := e.series[seriesKey(name, m)]
	return v, ok
}

var (
	metricNameRe = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRe  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// parseExposition reads the text format strictly: HELP and TYPE at most once
// per family and before its samples, a family's samples contiguous, every
// sample of a known type's family, labels well formed and not repeated,
// values parseable, no duplicate series.
func parseExposition(r io.Reader) (*exposition, error) {
	e := &exposition{families: map[string]*family{}, series: map[string]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var cur *family
	done := map[string]bool{} // families whose samples have ended
	ln := 0
	for sc.Scan() {
		ln++
		line := sc.Text()
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			f := strings.SplitN(line, " ", 4)
			if len(f) < 3 || (f[1] != "HELP" && f[1] != "TYPE") {
				continue // a comment
			}
			name := f[2]
			if !metricNameRe.MatchString(name) {
				return nil, fmt.Errorf("line %d: bad metric name %q", ln, name)
			}
			fam := e.families[name]
			if fam == nil {
				fam = &family{name: name}
				e.families[name] = fam
			} else if len(fam.samples) > 0 {
				return nil, fmt.Errorf("line %d: %s for %s after its samples", ln, f[1], name)
			}
			if cur != nil && cur != fam {
				done[cur.name] = true
			}
			cur = fam
			switch f[1] {
			case "HELP":
				if fam.help {
					return nil, fmt.Errorf("line %d: second HELP for %s", ln, name)
				}
				fam.help = true
			case "TYPE":
				if fam.typ != "" {
					return nil, fmt.Errorf("line %d: second TYPE for %s", ln, name)
				}
				if len(f) != 4 {
					return nil, fmt.Errorf("line %d: TYPE without a type", ln)
				}
				switch f[3] {
				case "counter", "gauge", "histogram", "summary", "untyped":
					fam.typ = f[3]
				default:
					return nil, fmt.Errorf("line %d: unknown type %q", ln, f[3])
				}
			}
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w: %q", ln, err, line)
		}
		fam := familyOf(e.families, s.name)
		if fam == nil {
			fam = &family{name: s.name, typ: "untyped"}
			e.families[s.name] = fam
		}
		if done[fam.name] {
			return nil, fmt.Errorf("line %d: samples of %s are not contiguous", ln, fam.name)
		}
		if cur != nil && cur != fam {
			done[cur.name] = true
		}
		cur = fam
		k := s.key()
		if _, dup := e.series[k]; dup {
			return nil, fmt.Errorf("line %d: duplicate series %s", ln, k)
		}
		e.series[k] = s.value
		fam.samples = append(fam.samples, s)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return e, nil
}

// familyOf finds the family a sample belongs to: its own name, or the name
// without a histogram/summary suffix when that family is typed so.
func familyOf(fams map[string]*family, name string) *family {
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suf); ok {
			if f := fams[base]; f != nil && (f.typ == "histogram" || f.typ == "summary") {
				if suf == "_bucket" && f.typ == "summary" {
					continue
				}
				return f
			}
		}
	}
	return fams[name]
}

func parseSample(line string) (sample, error) {
	s := sample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return s, fmt.Errorf("no value")
	}
	s.name = line[:i]
	if !metricNameRe.MatchString(s.name) {
		return s, fmt.Errorf("bad metric name %q", s.name)
	}
	rest := line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.IndexByte(rest, '=')
			if eq <= 0 {
				return s, fmt.Errorf("bad label")
			}
			ln := rest[:eq]
			if !labelNameRe.MatchString(ln) || strings.HasPrefix(ln, "__") {
				return s, fmt.Errorf("bad label name %q", ln)
			}
			rest = rest[eq+1:]
			if !strings.HasPrefix(rest, `"`) {
				return s, fmt.Errorf("label %s: value not quoted", ln)
			}
			var val strings.Builder
			j := 1
			for ; j < len(rest) && rest[j] != '"'; j++ {
				if rest[j] == '\\' && j+1 < len(rest) {
					j++
					switch rest[j] {
					case 'n':
						val.WriteByte('\n')
					case '\\', '"':
						val.WriteByte(rest[j])
					default:
						return s, fmt.Errorf("label %s: bad escape", ln)
					}
					continue
				}
				val.WriteByte(rest[j])
			}
			if j >= len(rest) {
				return s, fmt.Errorf("label %s: unterminated value", ln)
			}
			if _, dup := s.labels[ln]; dup {
				return s, fmt.Errorf("label %s repeated", ln)
			}
			s.labels[ln] = val.String()
			rest = rest[j+1:]
			if strings.HasPrefix(rest, ",") {
				rest = strings.TrimLeft(rest[1:], " \t") // the format allows blanks between labels
			}
		}
	}
	f := strings.Fields(rest)
	if len(f) < 1 || len(f) > 2 || !strings.HasPrefix(rest, " ") {
		return s, fmt.Errorf("want one value and an optional timestamp")
	}
	v, err := parseValue(f[0])
	if err != nil {
		return s, err
	}
	s.value = v
	if len(f) == 2 {
		if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
			return s, fmt.Errorf("bad timestamp %q", f[1])
		}
	}
	return s, nil
}

func parseValue(v string) (float64, error) {
	switch v {
	case "NaN":
		return math.NaN(), nil
	case "+Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	}
	return strconv.ParseFloat(v, 64)
}

// The relay's naming rules. allowedLabels are label names whose values come
// from fixed sets in the code; a new label must be added here on purpose.
var (
	relayNameRe   = regexp.MustCompile(`^relay_[a-z0-9]+(_[a-z0-9]+)+$`)
	allowedLabels = map[string]bool{
		"route": true, "status": true, "reason": true, "result": true, "class": true, "op": true,
		"outcome": true, "stage": true, "type": true, "category": true, "source": true,
		"le": true, "quantile": true,
	}
	labelValueRe = regexp.MustCompile(`^[A-Za-z0-9_.:+\-]{0,64}$`)
	hexKeyRe     = regexp.MustCompile(`^[0-9a-fA-F]{16,}$`)
	// Units other than seconds and bytes, and words that need a unit.
	badUnits  = map[string]bool{"ms": true, "msec": true, "millis": true, "milliseconds": true, "us": true, "usec": true, "microseconds": true, "ns": true, "nanoseconds": true, "minutes": true, "hours": true, "days": true, "kb": true, "mb": true, "gb": true, "kib": true, "mib": true, "gib": true, "kilobytes": true, "megabytes": true, "percent": true}
	needsUnit = map[string]string{"duration": "seconds", "latency": "seconds", "age": "seconds", "elapsed": "seconds", "size": "bytes"}
)

// lintExposition checks every relay_ family against the naming rules; the
// go_ and process_ families come from the metrics library and are only
// parsed. It returns one message per violation.
func lintExposition(e *exposition) []string {
	var bad []string
	for name, f := range e.families {
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
			continue
		}
		if !relayNameRe.MatchString(name) {
			bad = append(bad, name+": name must be relay_<subsystem>_<what> in lower snake case")
			continue
		}
		if !f.help || f.typ == "" {
			bad = append(bad, name+": no HELP/TYPE")
		}
		words := strings.Split(name, "_")
		for i, w := range words {
			if badUnits[w] {
				bad = append(bad, fmt.Sprintf("%s: unit %q: use base units (_seconds, _bytes)", name, w))
			}
			if unit, ok := needsUnit[w]; ok && (i+1 >= len(words) || words[i+1] != unit) {
				bad = append(bad, fmt.Sprintf("%s: %q must be followed by _%s", name, w, unit))
			}
		}
		total := strings.HasSuffix(name, "_total")
		switch f.typ {
		case "counter":
			if !total {
				bad = append(bad, name+": a counter's name ends in _total")
			}
		case "gauge":
			if total {
				bad = append(bad, name+": only counters end in _total")
			}
		case "histogram":
			if total {
				bad = append(bad, name+": only counters end in _total")
			}
			bad = append(bad, checkHistogram(f)...)
		default:
			bad = append(bad, fmt.Sprintf("%s: type %s: relay metrics are counters, gauges or (le) histograms", name, f.typ))
		}
		for _, s := range f.samples {
			for ln, lv := range s.labels {
				if !allowedLabels[ln] {
					bad = append(bad, fmt.Sprintf("%s: label %q is not one of the bounded labels", s.key(), ln))
				}
				if ln == "le" {
					continue
				}
				if !labelValueRe.MatchString(lv) || hexKeyRe.MatchString(lv) {
					bad = append(bad, fmt.Sprintf("%s: label value %q looks unbounded (a key, id or URL)", s.key(), lv))
				}
			}
			if f.typ == "counter" && (s.value < 0 || math.IsNaN(s.value)) {
				bad = append(bad, s.key()+": counter value is negative or NaN")
			}
		}
	}
	return bad
}

// checkHistogram checks a Prometheus histogram: for each label set, _bucket
// lines with le ascending and cumulative counts ending in +Inf, a _sum and a
// _count equal to the +Inf bucket.
func checkHistogram(f *family) []string {
	var bad []string
	type series struct {
		les    []float64
		counts []float64
		sum    bool
		count  float64
		hasCnt bool
	}
	by := map[string]*series{}
	get := func(s sample) *series {
		l := map[string]string{}
		for k, v := range s.labels {
			if k != "le" {
				l[k] = v
			}
		}
		k := seriesKey(f.name, l)
		if by[k] == nil {
			by[k] = &series{}
		}
		return by[k]
	}
	for _, s := range f.samples {
		switch s.name {
		case f.name + "_bucket":
			le, ok := s.labels["le"]
			if !ok {
				bad = append(bad, s.key()+": bucket without le")
				continue
			}
			v, err := parseValue(le)
			if err != nil {
				bad = append(bad, s.key()+": le is not a number")
				continue
			}
			sr := get(s)
			sr.les = append(sr.les, v)
			sr.counts = append(sr.counts, s.value)
		case f.name + "_sum":
			get(s).sum = true
		case f.name + "_count":
			sr := get(s)
			sr.count, sr.hasCnt = s.value, true
		default:
			bad = append(bad, s.key()+": not a sample of histogram "+f.name)
		}
	}
	for k, sr := range by {
		n := len(sr.les)
		if n == 0 || !math.IsInf(sr.les[n-1], 1) || !sr.sum || !sr.hasCnt {
			bad = append(bad, k+": histogram needs buckets ending at le=\"+Inf\", _sum and _count")
			continue
		}
		for i := 1; i < n; i++ {
			if sr.les[i] <= sr.les[i-1] || sr.counts[i] < sr.counts[i-1] {
				bad = append(bad, k+": buckets not ascending and cumulative")
				break
			}
		}
		if sr.counts[n-1] != sr.count {
			bad = append(bad, k+": _count differs from the +Inf bucket")
		}
	}
	return bad
}
