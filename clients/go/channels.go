package receiver

import (
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Channels holds the channels one endpoint receives notifications for, keyed by id,
// safe for concurrent use: the handler receives with them while the code that called
// watch updates them from the watch response.
type Channels struct {
	mu   sync.RWMutex
	byID map[string]*Channel
}

// NewChannels holds copies of the given channels.
func NewChannels(channels ...*Channel) *Channels {
	s := &Channels{byID: map[string]*Channel{}}
	for _, c := range channels {
		s.Add(c)
	}
	return s
}

func copyChannel(c *Channel) *Channel {
	cp := *c
	if c.Params != nil {
		cp.Params = make(map[string]string, len(c.Params))
		for k, v := range c.Params {
			cp.Params[k] = v
		}
	}
	return &cp
}

// Add stores a copy of c under its id, replacing any channel with that id. Add it
// before calling watch: the sync message can arrive before the watch response.
func (s *Channels) Add(c *Channel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byID == nil {
		s.byID = map[string]*Channel{}
	}
	s.byID[c.ID] = copyChannel(c)
}

// Get is a copy of the channel with this id.
func (s *Channels) Get(id string) (*Channel, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.byID[id]
	if !ok {
		return nil, false
	}
	return copyChannel(c), true
}

// Remove forgets the channel with this id (after stopping it).
func (s *Channels) Remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, id)
}

// Update applies a watch response (its JSON text) to the channel with this id, as
// Channel.Update does. The error is a *ChannelError, or says the id is unknown.
func (s *Channels) Update(id string, response []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.byID[id]
	if !ok {
		return fmt.Errorf("no channel %q to update", id)
	}
	updated := copyChannel(c)
	if err := updated.Update(response); err != nil {
		return err
	}
	delete(s.byID, id)
	s.byID[updated.ID] = updated
	return nil
}

// Receive validates a request as a notification on whichever held channel it names,
// at that channel's clock (see Channel.ReceiveAt). A channel that is not held is a
// channelIdMismatch. The error is an *Error.
func (s *Channels) Receive(h http.Header, body []byte) (*Notification, error) {
	return s.receive(h, body, nil)
}

// ReceiveAt is Receive at time now.
func (s *Channels) ReceiveAt(h http.Header, body []byte, now time.Time) (*Notification, error) {
	return s.receive(h, body, &now)
}

func (s *Channels) receive(h http.Header, body []byte, at *time.Time) (*Notification, error) {
	p := pick(h)
	// The headers parse before anything else is checked, as in Channel.ReceiveAt.
	n, err := parsePicked(p)
	if err != nil {
		return nil, err
	}
	var c *Channel
	if s != nil {
		s.mu.RLock()
		c = s.byID[n.ChannelID]
		s.mu.RUnlock()
	}
	if c == nil {
		return nil, &Error{reason: ReasonChannelIDMismatch, header: HeaderChannelID, Received: n.ChannelID,
			message: fmt.Sprintf("notification is for channel %q, which is not one of this endpoint's", n.ChannelID)}
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	if at == nil {
		t := now()
		at = &t
	}
	n, rerr := c.receive(p, body, *at)
	if rerr != nil {
		return nil, rerr
	}
	return n, nil
}
