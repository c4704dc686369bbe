package devcluster

import "github.com/planb-chat/planb/internal/freeport"

// FreeBasePort returns a base port whose whole port plan for dcs data
// centers is free right now and lies below the kernel's ephemeral port
// range, so that a data center killed in a drill can be restarted on its
// ports (see package freeport).
func FreeBasePort(dcs int) (int, error) {
	span, err := newPortPlan(0, dcs).span()
	if err != nil {
		return 0, err
	}
	return freeport.Range(span, func(base int) error { return newPortPlan(base, dcs).checkFree() })
}

// span is the highest port of the plan minus its base.
func (p portPlan) span() (int, error) {
	const probe = 1 // any valid base: only the offsets matter
	ports, err := newPortPlan(probe, p.dcs).ports()
	if err != nil {
		return 0, err
	}
	span := 0
	for port := range ports {
		span = max(span, port-probe)
	}
	return span, nil
}
