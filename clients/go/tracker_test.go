package receiver

import (
	"fmt"
	"reflect"
	"sync"
	"testing"
)

func u64(n uint64) *uint64 { return &n }

func arrivals(tr *Tracker, numbers ...uint64) []Arrival {
	var out []Arrival
	for _, n := range numbers {
		out = append(out, tr.ObserveNumber("ch", n, nil).Arrival)
	}
	return out
}

func TestClassifiesNewDuplicateAndOutOfOrder(t *testing.T) {
	got := arrivals(NewTracker(), 1, 3, 3, 7, 5, 5, 1, 8)
	want := []Arrival{New, New, Duplicate, New, OutOfOrder, Duplicate, Duplicate, New}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%v", got)
	}
	if New.String() != "new" || Duplicate.String() != "duplicate" || OutOfOrder.String() != "out of order" {
		t.Fatal("names")
	}
}

func TestChannelsAreIndependent(t *testing.T) {
	tr := NewTracker()
	if !tr.ObserveNumber("a", 5, nil).IsNew() || !tr.ObserveNumber("b", 1, nil).IsNew() ||
		!tr.ObserveNumber("b", 5, nil).IsNew() || !tr.ObserveNumber("a", 5, nil).IsDuplicate() {
		t.Fatal("channels share numbers")
	}
}

func TestFlagsAGapWhenThePreviousNumberIsNotTheLastSeen(t *testing.T) {
	tr := NewTracker()
	if o := tr.ObserveNumber("ch", 1, nil); o.Gap != nil {
		t.Fatal(o)
	}
	if o := tr.ObserveNumber("ch", 4, u64(1)); o.Gap != nil {
		t.Fatal(o)
	}
	skipped := tr.ObserveNumber("ch", 9, u64(6))
	if !skipped.IsNew() || skipped.Gap == nil || *skipped.Gap != (Gap{PreviousNumber: 6, LastSeen: 4}) {
		t.Fatalf("%+v", skipped)
	}
	// The late one is out of order, and no gap is reported for it.
	late := tr.ObserveNumber("ch", 6, u64(4))
	if late.Arrival != OutOfOrder || late.Gap != nil || !late.IsOutOfOrder() {
		t.Fatalf("%+v", late)
	}
}

func TestObserveTakesTheNotificationsNumbers(t *testing.T) {
	tr := NewTracker()
	tr.Observe(&Notification{ChannelID: "ch", MessageNumber: 2})
	o := tr.Observe(&Notification{ChannelID: "ch", MessageNumber: 5, PreviousNumber: u64(3)})
	if o.Gap == nil || *o.Gap != (Gap{PreviousNumber: 3, LastSeen: 2}) {
		t.Fatalf("%+v", o)
	}
	if !tr.Observe(&Notification{ChannelID: "ch", MessageNumber: 2}).IsDuplicate() {
		t.Fatal("not a duplicate")
	}
}

func TestNoGapWithoutHistory(t *testing.T) {
	if o := NewTracker().ObserveNumber("ch", 9, u64(6)); o.Arrival != New || o.Gap != nil {
		t.Fatalf("%+v", o)
	}
}

func TestRemembersABoundedWindowPerChannel(t *testing.T) {
	tr := NewTrackerWithLimits(3, 10)
	arrivals(tr, 1, 2, 3, 4)
	if !tr.ObserveNumber("ch", 2, nil).IsDuplicate() {
		t.Fatal("2 is in the window")
	}
	// 1 fell out of the window: it can only be reported as out of order.
	if !tr.ObserveNumber("ch", 1, nil).IsOutOfOrder() {
		t.Fatal("1 is not out of order")
	}
	if got := tr.channels["ch"].recent; !reflect.DeepEqual(got, []uint64{2, 3, 4}) {
		t.Fatalf("%v", got)
	}
}

func TestForgetsTheLeastRecentlySeenChannelFirst(t *testing.T) {
	tr := NewTrackerWithLimits(8, 2)
	tr.ObserveNumber("a", 1, nil)
	tr.ObserveNumber("b", 1, nil)
	tr.ObserveNumber("a", 2, nil)
	tr.ObserveNumber("c", 1, nil) // evicts b
	if tr.ChannelCount() != 2 {
		t.Fatal(tr.ChannelCount())
	}
	if !tr.ObserveNumber("a", 2, nil).IsDuplicate() {
		t.Fatal("a was forgotten")
	}
	if !tr.ObserveNumber("b", 1, nil).IsNew() {
		t.Fatal("b was remembered")
	}
}

func TestForgetStartsAChannelOver(t *testing.T) {
	tr := NewTracker()
	tr.ObserveNumber("ch", 5, nil)
	tr.Forget("ch")
	if !tr.ObserveNumber("ch", 1, nil).IsNew() {
		t.Fatal("not new")
	}
}

func TestLimitsAreAtLeastOneAndTheZeroTrackerWorks(t *testing.T) {
	tr := NewTrackerWithLimits(0, -1)
	tr.ObserveNumber("a", 1, nil)
	tr.ObserveNumber("a", 2, nil)
	if !tr.ObserveNumber("a", 1, nil).IsOutOfOrder() || !tr.ObserveNumber("a", 2, nil).IsDuplicate() {
		t.Fatal("a window of one")
	}
	tr.ObserveNumber("b", 1, nil)
	if tr.ChannelCount() != 1 {
		t.Fatal(tr.ChannelCount())
	}
	var zero Tracker
	if got := arrivals(&zero, 1, 1, 2); !reflect.DeepEqual(got, []Arrival{New, Duplicate, New}) || zero.window != DefaultWindow {
		t.Fatalf("%v", got)
	}
}

// Many goroutines observing the same numbers: each number is new exactly once.
func TestIsSafeForConcurrentUse(t *testing.T) {
	tr := NewTracker()
	var wg sync.WaitGroup
	var mu sync.Mutex
	news := map[string]int{}
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := uint64(1); n <= 100; n++ {
				for ch := 0; ch < 3; ch++ {
					id := fmt.Sprintf("ch-%d", ch)
					if tr.ObserveNumber(id, n, nil).Arrival != Duplicate {
						mu.Lock()
						news[fmt.Sprintf("%s/%d", id, n)]++
						mu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	for key, count := range news {
		if count != 1 {
			t.Errorf("%s was not a duplicate %d times", key, count)
		}
	}
	if len(news) != 300 {
		t.Fatal(len(news))
	}
}

func TestRetractMakesTheRetryOfAnUnhandledNotificationNewAgain(t *testing.T) {
	tr := NewTracker()
	tr.ObserveNumber("ch", 1, nil)
	if !tr.ObserveNumber("ch", 2, u64(1)).IsNew() {
		t.Fatal("2 is not new")
	}
	tr.Retract("ch", 2)
	if got := tr.channels["ch"].recent; !reflect.DeepEqual(got, []uint64{1}) {
		t.Fatalf("%v", got)
	}
	// 1 is the last number seen again: the retry is new, and no gap precedes it.
	if o := tr.ObserveNumber("ch", 2, u64(1)); o.Arrival != New || o.Gap != nil {
		t.Fatalf("%+v", o)
	}
	tr.Retract("nobody", 1)
	tr.Retract("ch", 99)
	if got := tr.channels["ch"].recent; !reflect.DeepEqual(got, []uint64{1, 2}) {
		t.Fatalf("%v", got)
	}
	if tr.ChannelCount() != 1 {
		t.Fatal("Retract created a channel")
	}
	var zero Tracker
	zero.Retract("ch", 1) // the zero Tracker remembers nothing to retract
}

func TestRetractOfAnOutOfOrderNumberKeepsItOutOfOrder(t *testing.T) {
	tr := NewTracker()
	arrivals(tr, 1, 2, 3)
	tr.Retract("ch", 3)
	if o := tr.ObserveNumber("ch", 3, u64(2)); o.Arrival != New || o.Gap != nil {
		t.Fatalf("%+v", o)
	}
	tr.Retract("ch", 2)
	if got := arrivals(tr, 2, 2); !reflect.DeepEqual(got, []Arrival{OutOfOrder, Duplicate}) {
		t.Fatalf("%v", got)
	}
	if got := tr.channels["ch"].recent; !reflect.DeepEqual(got, []uint64{1, 2, 3}) {
		t.Fatalf("%v", got)
	}
}

func TestRetractOfTheOnlyNumberLeavesNoHistoryToCompareWith(t *testing.T) {
	tr := NewTracker()
	tr.ObserveNumber("ch", 5, nil)
	tr.Retract("ch", 5)
	if tr.ChannelCount() != 1 {
		t.Fatal(tr.ChannelCount())
	}
	if o := tr.ObserveNumber("ch", 5, u64(4)); o.Arrival != New || o.Gap != nil {
		t.Fatalf("%+v", o)
	}
}

func TestRetractDoesNotBringBackWhatFellOutOfTheWindow(t *testing.T) {
	tr := NewTrackerWithLimits(2, 10)
	arrivals(tr, 1, 2, 3)
	tr.Retract("ch", 3)
	if got := tr.channels["ch"].recent; !reflect.DeepEqual(got, []uint64{2}) {
		t.Fatalf("%v", got)
	}
	// 1 was pushed out by 3 and stays forgotten: out of order, not a duplicate.
	if !tr.ObserveNumber("ch", 1, nil).IsOutOfOrder() {
		t.Fatal("1 is not out of order")
	}
}

func TestRetractDoesNotCountAsSeeingTheChannel(t *testing.T) {
	tr := NewTrackerWithLimits(8, 2)
	tr.ObserveNumber("a", 1, nil)
	tr.ObserveNumber("b", 1, nil)
	tr.Retract("a", 1)
	tr.ObserveNumber("c", 1, nil) // evicts a, the least recently seen
	if _, ok := tr.channels["a"]; ok {
		t.Fatal("a was kept")
	}
	if _, ok := tr.channels["b"]; !ok {
		t.Fatal("b was evicted")
	}
}
