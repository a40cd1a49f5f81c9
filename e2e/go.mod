module github.com/go-metro/go-metro/e2e

go 1.26.0

require (
	github.com/go-metro/go-metro v0.0.0
	github.com/google/go-cmp v0.7.0
	github.com/prometheus/client_golang v1.24.1
	github.com/prometheus/client_model v0.6.3
	github.com/prometheus/statsd_exporter v0.31.0
)

require (
	github.com/DataDog/datadog-agent/comp/core/tagger/origindetection v0.85.1 // indirect
	github.com/DataDog/datadog-agent/pkg/metrics v0.85.1 // indirect
	github.com/DataDog/datadog-agent/pkg/tagger/types v0.85.1 // indirect
	github.com/DataDog/sketches-go v1.4.8 // indirect
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/prometheus/common v0.71.0 // indirect
	github.com/prometheus/procfs v0.22.0 // indirect
	go.yaml.in/yaml/v2 v2.4.4 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)

replace github.com/go-metro/go-metro => ../
