package armtemplate

import (
	"strings"
	"time"
)

// splitResourceArgs separates resourceId()'s leading scope arguments from
// the type (the first argument holding a "/") and the names
// (template-functions-resource.md, resourceId).
func splitResourceArgs(fn string, a []any) (scope []string, typ string, names []string, err error) {
	s, err := stringArgs(fn, a)
	if err != nil {
		return nil, "", nil, err
	}
	t := -1
	for i, v := range s {
		if strings.Contains(v, "/") {
			t = i
			break
		}
	}
	if t < 0 {
		return nil, "", nil, evalFailed(fn, "the resource type is missing: no argument holds a fully qualified type such as 'Microsoft.Storage/storageAccounts'.")
	}
	typ = s[t]
	for _, n := range s[t+1:] {
		names = append(names, strings.Split(n, "/")...)
	}
	if want := len(strings.Split(typ, "/")) - 1; want != len(names) {
		// Real ARM answer quoted in microsoft/vscode-azurearmtools' tests:
		// "Unable to evaluate template language function 'resourceId': the
		// type 'Microsoft.Storage/storageAccounts' requires '1' resource
		// name argument(s)."
		return nil, "", nil, evalFailed(fn, "the type '%s' requires '%d' resource name argument(s).", typ, want)
	}
	return s[:t], typ, names, nil
}

func fnResourceID(c *evalCtx, a []any) (any, error) {
	scope, typ, names, err := splitResourceArgs("resourceId", a)
	if err != nil {
		return nil, err
	}
	sub, rg := c.p.subscriptionID(), c.p.sc.ResourceGroup.Name
	switch len(scope) {
	case 0:
	case 1:
		rg = scope[0]
	case 2:
		sub, rg = scope[0], scope[1]
	default:
		return nil, evalFailed("resourceId", "too many arguments before the resource type '%s'.", typ)
	}
	path, _ := providerPath(typ, names)
	return "/subscriptions/" + sub + "/resourceGroups/" + rg + path, nil
}

func fnSubscriptionResourceID(c *evalCtx, a []any) (any, error) {
	scope, typ, names, err := splitResourceArgs("subscriptionResourceId", a)
	if err != nil {
		return nil, err
	}
	sub := c.p.subscriptionID()
	switch len(scope) {
	case 0:
	case 1:
		sub = scope[0]
	default:
		return nil, evalFailed("subscriptionResourceId", "too many arguments before the resource type '%s'.", typ)
	}
	path, _ := providerPath(typ, names)
	return "/subscriptions/" + sub + path, nil
}

func fnTenantResourceID(_ *evalCtx, a []any) (any, error) {
	scope, typ, names, err := splitResourceArgs("tenantResourceId", a)
	if err != nil {
		return nil, err
	}
	if len(scope) > 0 {
		return nil, evalFailed("tenantResourceId", "too many arguments before the resource type '%s'.", typ)
	}
	path, _ := providerPath(typ, names)
	return path, nil
}

func fnExtensionResourceID(_ *evalCtx, a []any) (any, error) {
	base, ok := a[0].(string)
	if !ok {
		return nil, typeError("extensionResourceId", "String", a[0])
	}
	scope, typ, names, err := splitResourceArgs("extensionResourceId", a[1:])
	if err != nil {
		return nil, err
	}
	if len(scope) > 0 {
		return nil, evalFailed("extensionResourceId", "too many arguments before the resource type '%s'.", typ)
	}
	path, _ := providerPath(typ, names)
	return strings.TrimSuffix(base, "/") + path, nil
}

// resolveTarget turns reference()'s first argument into a resource ID and
// a default API version: a bare name is a resource of this template
// (template-functions-resource.md, reference).
func (c *evalCtx) resolveTarget(target string) (id, apiVersion string, err error) {
	if strings.HasPrefix(target, "/") {
		if rs := c.p.byID[strings.ToLower(target)]; len(rs) > 0 {
			return target, rs[0].APIVersion, nil
		}
		return target, "", nil
	}
	if rs := c.p.byName[strings.ToLower(target)]; len(rs) > 0 {
		return rs[0].ID, rs[0].APIVersion, nil
	}
	return "", "", exprErrorf("The template reference '%s' is not valid: could not find template resource or resource copy with this name. Please see https://aka.ms/arm-function-reference for usage details.", target)
}

func fnReference(c *evalCtx, a []any) (any, error) {
	target, ok := a[0].(string)
	if !ok {
		return nil, typeError("reference", "String", a[0])
	}
	id, apiVersion, err := c.resolveTarget(target)
	if err != nil {
		return nil, err
	}
	if len(a) > 1 {
		v, ok := a[1].(string)
		if !ok {
			return nil, typeError("reference", "String", a[1])
		}
		apiVersion = v
	}
	full := false
	if len(a) > 2 {
		f, ok := a[2].(string)
		if !ok || !strings.EqualFold(f, "full") {
			return nil, evalFailed("reference", "the third parameter must be 'Full'.")
		}
		full = true
	}
	if c.ref == nil {
		return nil, evalFailed("reference", "the resource '%s' cannot be referenced here.", id)
	}
	v, err := c.ref.Reference(id, apiVersion, full)
	if err != nil {
		return nil, evalFailed("reference", "%s", err.Error())
	}
	return normalize(v), nil
}

// callList serves list*() functions (listKeys, listSecrets, …) through a
// Referencer that is also a Lister.
func (c *evalCtx) callList(name string, args []expr) (any, error) {
	if c.phase != phaseBody && c.phase != phaseOutputs {
		return nil, exprErrorf("The template function '%s' is not expected at this location.%s", name, usageSuffix)
	}
	if len(args) < 2 || len(args) > 3 {
		return nil, exprErrorf("Unable to evaluate template language function '%s': function requires between 2 and 3 argument(s) while %d were provided.%s", name, len(args), usageSuffix)
	}
	vals := make([]any, len(args))
	for i, a := range args {
		v, err := c.eval(a)
		if err != nil {
			return nil, err
		}
		vals[i] = v
	}
	target, ok := vals[0].(string)
	if !ok {
		return nil, typeError(name, "String", vals[0])
	}
	id, _, err := c.resolveTarget(target)
	if err != nil {
		return nil, err
	}
	apiVersion, ok := vals[1].(string)
	if !ok {
		return nil, typeError(name, "String", vals[1])
	}
	l, ok := c.ref.(Lister)
	if !ok {
		return nil, evalFailed(name, "the resource '%s' does not support the action '%s'.", id, name)
	}
	var body any
	if len(vals) > 2 {
		body = vals[2]
	}
	v, err := l.List(id, apiVersion, name, body)
	if err != nil {
		return nil, evalFailed(name, "%s", err.Error())
	}
	return normalize(v), nil
}

// fnUTCNow is utcNow(format): .NET format strings, default
// "yyyyMMddTHHmmssZ" (template-functions-date.md). Only allowed in
// parameter defaults, as in ARM.
func fnUTCNow(c *evalCtx, a []any) (any, error) {
	f := "yyyyMMddTHHmmssZ"
	if len(a) > 0 {
		s, ok := a[0].(string)
		if !ok {
			return nil, typeError("utcNow", "String", a[0])
		}
		f = s
	}
	return dotnetFormat(c.p.now(), f)
}

// standardFormats are .NET's standard date and time format strings as the
// invariant culture expands them into custom ones (utcNow takes .NET
// format strings, template-functions-date.md). The .NET "Standard DateTime
// Format Strings" page (learn.microsoft.com, az4se3k1) gives "d" as
// "MM/dd/yyyy" and "D" as "dddd, dd MMMM yyyy" for the invariant culture;
// the other expansions are the invariant culture's as we know them, not
// checked against a source read for this package. "o" and "u" carry a
// literal "Z": utcNow's time is UTC.
var standardFormats = map[string]string{
	"d": "MM/dd/yyyy",
	"D": "dddd, dd MMMM yyyy",
	"f": "dddd, dd MMMM yyyy HH:mm",
	"F": "dddd, dd MMMM yyyy HH:mm:ss",
	"g": "MM/dd/yyyy HH:mm",
	"G": "MM/dd/yyyy HH:mm:ss",
	"m": "MMMM dd",
	"M": "MMMM dd",
	"r": "ddd, dd MMM yyyy HH:mm:ss 'GMT'",
	"R": "ddd, dd MMM yyyy HH:mm:ss 'GMT'",
	"s": "yyyy-MM-ddTHH:mm:ss",
	"t": "HH:mm",
	"T": "HH:mm:ss",
	"u": "yyyy-MM-dd HH:mm:ss'Z'",
	"U": "dddd, dd MMMM yyyy HH:mm:ss",
	"y": "yyyy MMMM",
	"Y": "yyyy MMMM",
	"o": "yyyy-MM-ddTHH:mm:ss.fffffff'Z'",
	"O": "yyyy-MM-ddTHH:mm:ss.fffffff'Z'",
}

// dotnetFormat formats t (UTC) with a .NET standard format (one
// character) or a custom one. Custom formats keep characters that are not
// specifiers as they are, and text in quotes literally.
func dotnetFormat(t time.Time, f string) (string, error) {
	if len(f) == 1 {
		std, ok := standardFormats[f]
		if !ok {
			return "", evalFailed("utcNow", "the format '%s' is not a supported .NET standard date and time format.", f)
		}
		f = std
	}
	tokens := []struct{ tok, layout string }{
		{"yyyy", "2006"}, {"yy", "06"}, {"MMMM", "January"}, {"MMM", "Jan"}, {"MM", "01"}, {"M", "1"},
		{"dddd", "Monday"}, {"ddd", "Mon"}, {"dd", "02"}, {"d", "2"}, {"HH", "15"}, {"hh", "03"}, {"h", "3"},
		{"mm", "04"}, {"m", "4"}, {"ss", "05"}, {"s", "5"}, {"fffffff", "0000000"}, {"ffffff", "000000"},
		{"fffff", "00000"}, {"ffff", "0000"}, {"fff", "000"}, {"ff", "00"}, {"f", "0"}, {"tt", "PM"},
	}
	var b strings.Builder
	for i := 0; i < len(f); {
		if q := f[i]; q == '\'' || q == '"' {
			end := strings.IndexByte(f[i+1:], q)
			if end < 0 {
				end = len(f) - i - 1
			}
			b.WriteString(f[i+1 : i+1+end])
			i += end + 2
			continue
		}
		matched := false
		for _, tk := range tokens {
			if strings.HasPrefix(f[i:], tk.tok) {
				l := tk.layout
				if strings.HasPrefix(l, "0") && strings.Trim(l, "0") == "" {
					b.WriteString(t.Format("." + l)[1:])
				} else {
					b.WriteString(t.Format(l))
				}
				i += len(tk.tok)
				matched = true
				break
			}
		}
		if !matched {
			b.WriteByte(f[i])
			i++
		}
	}
	return b.String(), nil
}
