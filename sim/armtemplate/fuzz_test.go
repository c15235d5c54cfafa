package armtemplate

import "testing"

func FuzzParseExpression(f *testing.F) {
	for _, s := range []string{"concat('a', 1)", "parameters('o').a[0]", "if(true(), 'a', 'b')", "'it''s'", "-5", "concat(", "a.b", "[[", "format('{0:D3}', 7)", "createArray(1)[5]"} {
		f.Add(s)
	}
	tpl, err := Parse([]byte(`{"parameters":{"o":{"type":"object","defaultValue":{"a":[1]}}}}`))
	if err != nil {
		f.Fatal(err)
	}
	pl, err := tpl.Plan(nil, testScope())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := parseExpression(s)
		if err != nil {
			return
		}
		// Evaluation must not panic either. Each input gets the whole
		// evaluation budget.
		pl.p.steps = 0
		c := &evalCtx{p: pl.p, phase: phaseBody}
		_, _ = c.eval(e)
	})
}

func FuzzParseTemplate(f *testing.F) {
	f.Add([]byte(commentedTemplate))
	f.Add([]byte(`{"parameters":{"a":{"type":"int","defaultValue":"[add(1,2)]"}},"resources":[{"type":"A.B/c","apiVersion":"1","name":"[concat('x',copyIndex())]","copy":{"name":"l","count":2}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tpl, err := Parse(b)
		if err != nil {
			return
		}
		pl, err := tpl.Plan(nil, testScope())
		if err != nil {
			return
		}
		for _, r := range pl.Resources {
			_, _ = pl.Body(r, nil)
		}
		_, _ = pl.Outputs(nil)
	})
}
