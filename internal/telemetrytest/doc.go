// Package telemetrytest tests authkit's OpenTelemetry spans and metrics
// with the SDK's in-memory exporters (sdk/trace/tracetest, the sdk/metric
// manual reader). It is a module of its own so that the SDK, which only
// these tests need, stays out of the library's go.mod and so out of its
// users' module graphs.
package telemetrytest
