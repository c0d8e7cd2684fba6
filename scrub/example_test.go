package scrub_test

import (
	"fmt"

	"github.com/relayhq/relay/scrub"
)

func ExampleCompile() {
	s, err := scrub.Compile(scrub.Config{
		DataScrubbing: &scrub.DataScrubbing{ScrubData: true, ScrubDefaults: true},
		PIIConfig: []byte(`{
		  "applications": {
		    "extra.customer_note": ["@anything:remove"],
		    "$string": ["@iban:mask"]
		  }
		}`),
	})
	if err != nil {
		panic(err)
	}
	out, changed, err := s.ScrubEvent([]byte(`{"extra":{"customer_note":"call me","iban":"DE89370400440532013000","password":"hunter2"}}`))
	fmt.Println(changed, err)
	fmt.Println(string(out))
	// Output:
	// true <nil>
	// {"extra":{"customer_note":null,"iban":"**********************","password":"[Filtered]"},"_meta":{"extra":{"customer_note":{"":{"rem":[["@anything:remove","x"]]}},"iban":{"":{"rem":[["@iban:mask","m",0,22]],"len":22}},"password":{"":{"rem":[["@password:filter","s",0,10]],"len":7}}}}}
}

func ExampleScrubber_ScrubEventMeta() {
	s, err := scrub.Compile(scrub.Config{DataScrubbing: &scrub.DataScrubbing{ScrubData: true, ScrubDefaults: true, ScrubIPAddresses: true}})
	if err != nil {
		panic(err)
	}
	res, err := s.ScrubEventMeta([]byte(`{"user":{"ip_address":"203.0.113.9"},"request":{"headers":{"Authorization":"Bearer abc.def"}}}`))
	if err != nil {
		panic(err)
	}
	fmt.Println(string(res.Event))
	fmt.Println(string(res.Meta))
	// Output:
	// {"user":{"ip_address":null},"request":{"headers":{"Authorization":"[Filtered]"}}}
	// {"user":{"ip_address":{"":{"rem":[["@ip:replace","s",0,4],["@anything:remove","x"]],"len":11}}},"request":{"headers":{"Authorization":{"":{"rem":[["@bearer:filter","s",0,10]],"len":14}}}}}
}

func ExampleParseSelector() {
	_, err := scrub.ParseSelector("$frame.**.vars.**")
	fmt.Println(err)
	sel, _ := scrub.ParseSelector("$request.headers.'x-api-key' || extra.**")
	fmt.Println(sel)
	// Output:
	// invalid selector "$frame.**.vars.**": deep wildcard used more than once
	// $http.headers.x-api-key || extra.**
}
