package deploy

import "testing"

// The compose checks resolve values through interpolate; a wrong expansion
// here would make them pass or fail for the wrong reason.
func TestInterpolateAsCompose(t *testing.T) {
	env := map[string]string{"A": "a", "EMPTY": "", "PORT": "9001"}
	for _, tc := range []struct{ in, want string }{
		{"${A}", "a"},
		{"$A-x", "a-x"},
		{"$$A", "$A"},
		{"${MISSING}", ""},
		{"${EMPTY:-d}", "d"},
		{"${EMPTY-d}", ""},
		{"${MISSING-d}", "d"},
		{"${A:+alt}", "alt"},
		{"${EMPTY:+alt}", ""},
		{"${EMPTY+alt}", "alt"},
		{"127.0.0.1:${PORT:-8001}:${PORT:-8001}", "127.0.0.1:9001:9001"},
		{"${URL:-http://localhost:${MISSING:-8001}/x}", "http://localhost:8001/x"},
		{"${URL:-m://${A}:${B:-b}@h}", "m://a:b@h"},
	} {
		got, err := interpolate(tc.in, env)
		if err != nil || got != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"${MISSING:?need it}", "${EMPTY:?need it}", "${MISSING?need it}", "${A", "${A/x/y}"} {
		if got, err := interpolate(in, env); err == nil {
			t.Errorf("%q: %q, want an error", in, got)
		}
	}
	if got, err := interpolate("${EMPTY?need it}", env); err != nil || got != "" {
		t.Errorf("${EMPTY?...}: %q, %v; set but empty passes", got, err)
	}
}
