// Command discovery-supervisor runs beside each replica of the process
// runtime: the platform starts it with the replica's state directory, and it
// starts the replica, keeps its bounded log and records its exit. See package
// deployer/process/supervisor.
package main

import (
	"os"

	"github.com/discovery-platform/discovery/deployer/process/supervisor"
)

func main() { os.Exit(supervisor.Main(os.Args)) }
