// Package cluster runs three real signatory processes that share one watermark store (PostgreSQL,
// then etcd) under a conflicting load, while an instance is killed and while the store restarts,
// and checks that no (key, class, level, round) is ever signed with two different payloads. The
// members, their keys and the store come from testdaemon (NewKeys, StartMembers, SharedStore).
package cluster

import (
	"testing"

	"github.com/signatory-go/signatory/internal/testdaemon"
)

func TestMain(m *testing.M) { testdaemon.Main(m) }
