package render

import (
	"reflect"
	"strings"
	"testing"

	"github.com/swiftdeploy/swiftdeploy/pkg/stack"
)

// Each canaried web service is routed at its own weight, in variables of
// its own: weight 0 leaves it unrouted (its match still routes), 100
// sends it everything, anything between splits it.
func TestNginxOtherCanaryWeights(t *testing.T) {
	tests := []struct {
		weight   int
		match    bool
		webPass  string // what web's route passes to
		upstream bool   // app_canary_web is in the config
		split    bool   // web's split_clients is
	}{
		{0, false, "app_stable_web", false, false},
		{0, true, "$swiftdeploy_pool_web", true, false},
		{10, false, "$swiftdeploy_split_web", true, true},
		{10, true, "$swiftdeploy_pool_web", true, true},
		{100, false, "app_canary_web", true, false},
	}
	for _, tt := range tests {
		s := loadStack(t, "services_canaries")
		s.OtherCanaries[0].Weight = tt.weight
		if !tt.match {
			s.OtherCanaries[0].Match = nil
		}
		conf, err := Nginx(s)
		if err != nil {
			t.Fatal(err)
		}
		c := string(conf)
		web := c[strings.Index(c, "server_name shop.example.com;"):]
		web = web[strings.Index(web, "# services.web:"):]
		web = web[:strings.Index(web, "# services.api:")]
		if want := "proxy_pass http://" + tt.webPass + ";"; !strings.Contains(web, want) {
			t.Errorf("weight %d, match %v: web's route does not %s:\n%s", tt.weight, tt.match, want, web)
		}
		if got := strings.Contains(web, "Set-Cookie"); got != tt.split {
			t.Errorf("weight %d: web's route sets the sticky cookie: %v, want %v", tt.weight, got, tt.split)
		}
		if got := strings.Contains(c, "upstream app_canary_web {"); got != tt.upstream {
			t.Errorf("weight %d: app_canary_web upstream present %v, want %v", tt.weight, got, tt.upstream)
		}
		if got := strings.Contains(c, `split_clients "$swiftdeploy_client:web" $swiftdeploy_split_web {`); got != tt.split {
			t.Errorf("weight %d: web's split present %v, want %v", tt.weight, got, tt.split)
		}
		// api, the primary, keeps its split at 30% and its match.
		if !strings.Contains(c, "30% app_canary_api;") || !strings.Contains(c, "default $swiftdeploy_split;") {
			t.Errorf("weight %d: api's split or match changed", tt.weight)
		}
	}
}

// Without the primary's split, the sticky cookie's maps are still there
// for another service's.
func TestNginxOtherSplitAlone(t *testing.T) {
	s := loadStack(t, "services_canaries")
	s.Canary, s.CanaryWeight, s.CanaryService, s.FrontDoor.Match = nil, 0, "", nil // api rolled back
	conf, err := Nginx(s)
	if err != nil {
		t.Fatal(err)
	}
	c := string(conf)
	for _, want := range []string{"map $cookie_swiftdeploy_client $swiftdeploy_client {", "map $cookie_swiftdeploy_client $swiftdeploy_set_cookie {", "$swiftdeploy_split_web {"} {
		if strings.Count(c, want) != 1 {
			t.Errorf("%q appears %d times, want once", want, strings.Count(c, want))
		}
	}
	if strings.Contains(c, "$swiftdeploy_split {") || strings.Contains(c, "app_canary_api") {
		t.Error("api's canary is routed after its rollback")
	}
}

// The status socket lists every routed canary's containers, the
// primary's weight as weight and the others' on a line of their own.
func TestNginxStatusSeveralCanaries(t *testing.T) {
	s := loadStack(t, "services_canaries")
	conf, err := Nginx(s)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := NginxRevision(conf)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseLoadedConfig(returnedBody(t, conf))
	if err != nil {
		t.Fatal(err)
	}
	want := LoadedConfig{Revision: rev, Weight: 30, Stable: names(s.Stable), Canary: names(s.Canaries()), Weights: map[string]int{"web": 10}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("status parses to %+v\nwant %+v", got, want)
	}
	if len(want.Canary) != 2 {
		t.Errorf("canary lists %v, want api's and web's", want.Canary)
	}
}

func TestInvalidOtherCanary(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(s *stack.Stack)
		want   string
	}{
		{"weight", func(s *stack.Stack) { s.OtherCanaries[0].Weight = 101 }, "other_canaries[0].weight: must be 0-100, got 101"},
		{"no service", func(s *stack.Stack) { s.OtherCanaries[0].Service = "shop" }, `other_canaries[0].service: names no web service of the stack, got "shop"`},
		{"accessory", func(s *stack.Stack) { s.OtherCanaries[0].Service = "db" }, `other_canaries[0].service: names no web service of the stack, got "db"`},
		{"the primary", func(s *stack.Stack) { s.OtherCanaries[0].Service = "api" }, "other_canaries[0].service: api is the primary"},
		{"twice", func(s *stack.Stack) {
			c := s.OtherCanaries[0]
			c.Apps = []stack.App{c.Apps[0]}
			c.Apps[0].Name += "-b"
			s.OtherCanaries = append(s.OtherCanaries, c)
		}, "other_canaries[1].service: web has two canaries"},
		{"no containers", func(s *stack.Stack) { s.OtherCanaries[0].Apps = nil }, "other_canaries[0]: no canary containers for web"},
		{"another service's container", func(s *stack.Stack) { s.OtherCanaries[0].Apps[0].Service = "api" }, `other_canaries[0][0].service: is "api", not the canary's "web"`},
		{"container name", func(s *stack.Stack) { s.OtherCanaries[0].Apps[0].Name = "x;}" }, `other_canaries[0][0].name: invalid container name "x;}"`},
		{"match value", func(s *stack.Stack) { s.OtherCanaries[0].Match.Value = `a"b` }, `other_canaries[0].match.value: invalid value "a\"b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := loadStack(t, "services_canaries")
			tt.mutate(&s)
			out, err := Nginx(s)
			if err == nil {
				t.Fatalf("rendered an invalid stack without error:\n%s", out)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\ndoes not name %q", err, tt.want)
			}
		})
	}
}
