package storeutil

import "testing"

func TestDecodeFacts(t *testing.T) {
	for _, legacy := range []string{``, `null`, `{"languages":{"Go":1}}`} {
		if f, err := DecodeFacts([]byte(legacy)); err != nil || f != nil {
			t.Errorf("DecodeFacts(%q) = %v, %v; want no facts and no error", legacy, f, err)
		}
	}
	f, err := DecodeFacts([]byte(`[{"id":"git.tests","source":"git","kind":"tests","summary":"no tests","value":{"present":false}}]`))
	if err != nil || len(f) != 1 || f[0].ID != "git.tests" || f[0].Value.(map[string]any)["present"] != false {
		t.Fatalf("DecodeFacts = %+v, %v", f, err)
	}
	if _, err := DecodeFacts([]byte(`[{"id":1}]`)); err == nil {
		t.Error("a malformed fact list must be an error")
	}
}
