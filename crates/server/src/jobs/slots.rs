//! Slots for reading pushed content (inspections, in jobs and in manifest PUTs that policies
//! make wait): at most `n` at once in a process, never more than `n - 1` for one key (a
//! repository) when `n > 1`, and a freed slot goes to the waiter whose key holds the fewest,
//! oldest first. So one push's work, however large, leaves room for everyone else's.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// The slots of one process.
#[derive(Debug)]
pub(crate) struct Slots {
    size: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    free: usize,
    running: HashMap<String, usize>,
    next: u64,
    waiting: BTreeMap<u64, (String, oneshot::Sender<Slot>)>,
}

/// A slot held; dropping it frees it.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<Slots>,
    key: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.release(&self.key);
    }
}

impl Slots {
    /// `n` slots (at least one).
    pub(crate) fn new(n: usize) -> Self {
        let size = n.max(1);
        Self { size, state: Mutex::new(State { free: size, ..State::default() }) }
    }

    /// Slots free now.
    pub(crate) fn free(&self) -> usize {
        self.state.lock().expect("lock").free
    }

    /// The most one key may hold.
    fn per_key(&self) -> usize {
        if self.size > 1 { self.size - 1 } else { 1 }
    }

    /// A slot for work of `key`, when the rules above give it one.
    pub(crate) async fn acquire(self: &Arc<Self>, key: &str) -> Slot {
        let (tx, rx) = oneshot::channel();
        let refused = {
            let mut state = self.state.lock().expect("lock");
            let seq = state.next;
            state.next += 1;
            state.waiting.insert(seq, (key.to_owned(), tx));
            self.dispatch(&mut state)
        };
        drop(refused);
        // Granted slots travel in the channel: a waiter that goes away drops its slot, which
        // frees it again.
        match rx.await {
            Ok(slot) => slot,
            Err(_) => unreachable!("a waiter's sender is only dropped by sending it a slot"),
        }
    }

    fn release(self: &Arc<Self>, key: &str) {
        let refused = {
            let mut state = self.state.lock().expect("lock");
            state.free += 1;
            if let Some(n) = state.running.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    state.running.remove(key);
                }
            }
            self.dispatch(&mut state)
        };
        // Slots whose waiters went away are freed once the lock is released.
        drop(refused);
    }

    /// Hands the free slots to waiters: each time, the oldest waiter among those whose key
    /// holds the fewest slots (and may hold one more). Returns the slots of waiters that went
    /// away, to be dropped after the lock.
    fn dispatch(self: &Arc<Self>, state: &mut State) -> Vec<Slot> {
        let mut refused = Vec::new();
        let per_key = self.per_key();
        while state.free > 0 {
            let pick = state
                .waiting
                .iter()
                .map(|(seq, (k, _))| (state.running.get(k).copied().unwrap_or(0), *seq))
                .filter(|(held, _)| *held < per_key)
                .min();
            let Some((_, seq)) = pick else { break };
            let (key, tx) = state.waiting.remove(&seq).expect("picked from the map");
            state.free -= 1;
            *state.running.entry(key.clone()).or_insert(0) += 1;
            if let Err(slot) = tx.send(Slot { slots: Arc::clone(self), key }) {
                refused.push(slot);
            }
        }
        refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_key_never_takes_every_slot_and_freed_slots_go_to_other_keys_first() {
        let slots = Arc::new(Slots::new(2));
        let a1 = slots.acquire("a").await;
        // `a` holds one of two: its second waits, `b` gets the last one at once.
        let waiting_a = tokio::spawn({
            let slots = Arc::clone(&slots);
            async move { slots.acquire("a").await }
        });
        tokio::task::yield_now().await;
        let b1 = tokio::time::timeout(std::time::Duration::from_secs(1), slots.acquire("b"))
            .await
            .expect("b is not held up by a");
        assert_eq!(slots.free(), 0);
        // `c` waits too; when `b` is done, `c` (holding none) goes before `a`'s second.
        let waiting_c = tokio::spawn({
            let slots = Arc::clone(&slots);
            async move { slots.acquire("c").await }
        });
        tokio::task::yield_now().await;
        drop(b1);
        let c1 = waiting_c.await.expect("c");
        assert!(!waiting_a.is_finished());
        drop(a1);
        let a2 = waiting_a.await.expect("a, once its first is done");
        drop((a2, c1));
        assert_eq!(slots.free(), 2);
        // A waiter that gives up leaves nothing held.
        let x = slots.acquire("x").await;
        let gone = tokio::spawn({
            let slots = Arc::clone(&slots);
            async move { slots.acquire("x").await }
        });
        tokio::task::yield_now().await;
        gone.abort();
        let _ = gone.await;
        drop(x);
        assert_eq!(slots.free(), 2);
    }
}
