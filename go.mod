module github.com/go-metro/go-metro

go 1.26.0

require (
	github.com/DataDog/sketches-go v1.4.8
	github.com/google/go-cmp v0.7.0
	github.com/gopacket/gopacket v1.7.7
	go.uber.org/goleak v1.3.0
	golang.org/x/net v0.55.0
	golang.org/x/sys v0.49.0
)

require google.golang.org/protobuf v1.36.11 // indirect
