module github.com/go-metro/go-metro

go 1.26.0

require (
	github.com/DataDog/datadog-agent/pkg/metrics v0.85.1
	github.com/DataDog/datadog-go/v5 v5.9.1
	github.com/DataDog/sketches-go v1.4.8
	github.com/google/go-cmp v0.7.0
	github.com/gopacket/gopacket v1.7.7
	go.uber.org/goleak v1.3.0
	golang.org/x/net v0.62.0
	golang.org/x/sys v0.49.0
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/DataDog/datadog-agent/comp/core/tagger/origindetection v0.85.1 // indirect
	github.com/DataDog/datadog-agent/pkg/tagger/types v0.85.1 // indirect
	github.com/Microsoft/go-winio v0.6.2 // indirect
	github.com/kr/text v0.2.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
