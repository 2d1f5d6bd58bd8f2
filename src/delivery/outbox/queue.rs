//! A channel's in-memory queue of matched events, one word while it holds nothing:
//! the `VecDeque` lives in a box made on the first event and given back when the
//! channel goes to sleep (`idle.rs`), so that a million idle channels do not each
//! carry an empty `VecDeque` (32 bytes) inline.

use std::collections::VecDeque;

use crate::model::SharedEvent;

#[derive(Default)]
// The box is the point: one word inline instead of a `VecDeque`'s four.
#[allow(clippy::box_collection)]
pub(super) struct Queue(pub(super) Option<Box<VecDeque<SharedEvent>>>);

impl Queue {
    pub(super) fn push_back(&mut self, event: SharedEvent) {
        self.0.get_or_insert_with(Box::default).push_back(event);
    }

    pub(super) fn pop_front(&mut self) -> Option<SharedEvent> {
        self.0.as_mut()?.pop_front()
    }

    pub(super) fn front(&self) -> Option<&SharedEvent> {
        self.0.as_ref()?.front()
    }

    pub(super) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |queue| queue.len())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn clear(&mut self) {
        self.0 = None;
    }

    /// Gives the memory back if nothing is queued.
    pub(super) fn release_if_empty(&mut self) {
        if self.is_empty() {
            self.0 = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Event;

    #[test]
    fn it_is_a_fifo_that_takes_no_memory_while_empty() {
        let mut queue = Queue::default();
        assert!(queue.0.is_none() && queue.is_empty() && queue.front().is_none());
        queue.push_back(Event::at(1));
        queue.push_back(Event::at(2));
        assert_eq!(queue.len(), 2);
        queue.release_if_empty();
        assert_eq!(queue.pop_front().map(|e| e.seq), Some(1));
        assert_eq!(queue.front().map(|e| e.seq), Some(2));
        assert_eq!(queue.pop_front().map(|e| e.seq), Some(2));
        assert_eq!(queue.pop_front(), None);
        queue.release_if_empty();
        assert!(queue.0.is_none(), "an empty queue gives its box back");
        assert_eq!(std::mem::size_of::<Queue>(), 8);
    }
}
