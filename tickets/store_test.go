package tickets_test

import (
	"testing"

	"github.com/helpdeskgw/helpdesk/internal/testdb"
)

var db *testdb.DB

func TestMain(m *testing.M) { testdb.Main(m, &db) }
