//! Coarse per-thread deadlines for requests waiting on their upstream.
//!
//! A tokio timer per request costs a timer-wheel insert and removal, and
//! whenever its deadline is the earliest one of the thread (the usual case:
//! the other timers are the connections' idle bounds) a write to the
//! runtime's eventfd and an extra wakeup. Almost every request is answered
//! long before its deadline, so instead each proxy thread keeps one list of
//! deadlines, and one ticker task (running only while the list is not empty)
//! wakes the requests whose deadline passed, `TICK` late at most.

use std::cell::RefCell;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

/// Resolution of the deadlines.
const TICK: Duration = Duration::from_millis(10);

struct Entry {
    at: Instant,
    waker: Waker,
    fired: bool,
}

#[derive(Default)]
struct List {
    entries: slab::Slab<Entry>,
    ticking: bool,
}

thread_local! {
    static LIST: RefCell<List> = RefCell::new(List::default());
}

/// One request's place in its thread's list; removed on drop.
#[derive(Default)]
pub struct Deadline {
    key: Option<usize>,
}

impl Deadline {
    /// Arm (or move) the deadline to `at`, waking `cx`'s task when it has
    /// passed.
    pub fn arm(&mut self, at: Instant, cx: &Context<'_>) {
        LIST.with_borrow_mut(|list| {
            let entry = Entry {
                at,
                waker: cx.waker().clone(),
                fired: false,
            };
            match self.key {
                Some(k) => list.entries[k] = entry,
                None => self.key = Some(list.entries.insert(entry)),
            }
            if !list.ticking {
                list.ticking = true;
                tokio::spawn(tick());
            }
        });
    }

    /// Whether the armed deadline has passed; keeps the waker current.
    pub fn passed(&mut self, cx: &Context<'_>) -> bool {
        let Some(k) = self.key else {
            return false;
        };
        LIST.with_borrow_mut(|list| match list.entries.get_mut(k) {
            Some(e) if e.fired => true,
            Some(e) => {
                if !e.waker.will_wake(cx.waker()) {
                    e.waker = cx.waker().clone();
                }
                false
            }
            None => false,
        })
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            // The thread-local is gone only at thread exit.
            let _ = LIST.try_with(|list| {
                list.borrow_mut().entries.remove(k);
            });
        }
    }
}

/// Wake the requests whose deadline passed, every `TICK`, while any wait.
async fn tick() {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        let now = Instant::now();
        let mut due = Vec::new();
        let idle = LIST.with_borrow_mut(|list| {
            for (_, e) in list.entries.iter_mut() {
                if !e.fired && e.at <= now {
                    e.fired = true;
                    due.push(e.waker.clone());
                }
            }
            if list.entries.is_empty() {
                list.ticking = false;
                list.entries.clear();
                true
            } else {
                false
            }
        });
        // Woken outside the borrow: a woken task may run and arm again.
        for w in due {
            w.wake();
        }
        if idle {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_deadline_wakes_its_task_and_only_once_passed() {
        let started = Instant::now();
        let mut d = Deadline::default();
        std::future::poll_fn(|cx| {
            if d.passed(cx) {
                return std::task::Poll::Ready(());
            }
            if d.key.is_none() {
                d.arm(Instant::now() + Duration::from_millis(30), cx);
            }
            std::task::Poll::Pending
        })
        .await;
        assert!(started.elapsed() >= Duration::from_millis(30));
        drop(d);
        LIST.with_borrow(|l| assert_eq!(l.entries.len(), 0));
    }
}
