package schemas

import "testing"

func TestValidateRejectsViolations(t *testing.T) {
	cases := map[string]string{
		Planner:   `{"summary":"s","requirements":[],"user_stories":[]}`,
		Reviewer:  `{"approved":true,"summary":"","findings":[{"severity":"fatal","file":"a","line":1,"message":"m"}]}`,
		Coder:     `{"files":[{"path":"a"}],"delete":[],"notes":""}`,
		Architect: `{"stack":{"language":"go"},"components":[],"files":[],"interfaces":[]}`,
		Tester:    `not json`,
	}
	for name, doc := range cases {
		if err := Validate(name, []byte(doc)); err == nil {
			t.Errorf("%s accepted %s", name, doc)
		}
	}
	if err := Validate(Reviewer, []byte(`{"approved":false,"summary":"x","findings":[{"severity":"major","file":"a.js","line":3,"message":"m"}]}`)); err != nil {
		t.Fatal(err)
	}
}
