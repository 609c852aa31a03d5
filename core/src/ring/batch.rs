//! Batch operations: one index load and one publication per batch, at most one wake.

use core::fmt;

use super::{Consumer, Producer};
use crate::sync::Ordering;

impl<T> Producer<'_, T> {
    /// Number of free slots, reloading `head`.
    #[inline]
    fn free(&mut self) -> usize {
        // Acquire: pairs with the consumer's Release store of `head` (as in `push`).
        self.reload_limit();
        self.raw.distance(self.tail, self.limit)
    }

    /// Number of free slots, at least `want` if the cached `limit` already shows that many
    /// (no load of `head`, whose line the consumer writes on every pop), else reloaded.
    #[inline]
    fn free_for(&mut self, want: usize) -> usize {
        let cached = self.raw.distance(self.tail, self.limit);
        if cached >= want {
            cached
        } else {
            self.free()
        }
    }

    /// Publishes `n` slots written after `tail`.
    #[inline]
    fn publish(&mut self, n: usize) {
        self.tail = self.raw.advance(self.tail, n);
        // Release: pairs with the consumer's Acquire load of `tail`.
        self.raw.header().tail.store(self.tail, Ordering::Release);
    }

    /// Pushes items taken from `iter` into the free slots, publishes them at once and wakes a
    /// waiting consumer once. Takes at most as many items from `iter` as there are free
    /// slots, so no item is lost; returns how many were pushed (0 if the ring is closed).
    ///
    /// If `iter` panics, the items taken before are published and a waiting consumer is woken
    /// (nothing leaks, nobody is left waiting for items that are there).
    ///
    /// # Examples
    /// ```
    /// use aiothreads_core::ring::Ring;
    ///
    /// let mut ring = Ring::<u32, 4>::new();
    /// let (mut tx, mut rx) = ring.split();
    /// let mut items = 0..10;
    /// assert_eq!(tx.push_iter(&mut items), 4);
    /// assert_eq!(items.next(), Some(4)); // the rest stays in the iterator
    /// assert_eq!(rx.drain().collect::<Vec<_>>(), [0, 1, 2, 3]);
    /// ```
    pub fn push_iter(&mut self, iter: &mut impl Iterator<Item = T>) -> usize {
        if self.is_closed() {
            return 0;
        }
        let free = self.free();
        /// Publishes what was written and wakes a waiting consumer, also when `iter.next()`
        /// unwinds.
        struct Publish<'p, 'a, T> {
            producer: &'p mut Producer<'a, T>,
            written: usize,
        }
        impl<T> Drop for Publish<'_, '_, T> {
            fn drop(&mut self) {
                if self.written > 0 {
                    self.producer.publish(self.written);
                    self.producer.notify_consumer();
                }
            }
        }
        let mut guard = Publish {
            producer: self,
            written: 0,
        };
        while guard.written < free {
            let Some(value) = iter.next() else { break };
            let pos = guard
                .producer
                .raw
                .advance(guard.producer.tail, guard.written);
            // SAFETY: `written < free`, so `pos` is in `tail .. head + cap`: a vacant slot.
            unsafe { guard.producer.raw.write(pos, value) };
            guard.written += 1;
        }
        let written = guard.written;
        drop(guard); // publishes and notifies
        written
    }

    /// Copies as many items of `items` as there are free slots, publishes them at once and
    /// wakes a waiting consumer once. Returns how many were pushed (0 if the ring is closed).
    ///
    /// # Examples
    /// ```
    /// use aiothreads_core::ring::Ring;
    ///
    /// let mut ring = Ring::<u8, 4>::new();
    /// let (mut tx, mut rx) = ring.split();
    /// assert_eq!(tx.push_slice(b"hello"), 4);
    /// let mut buf = [0; 8];
    /// assert_eq!(rx.pop_slice(&mut buf), 4);
    /// assert_eq!(&buf[..4], b"hell");
    /// ```
    pub fn push_slice(&mut self, items: &[T]) -> usize
    where
        T: Copy,
    {
        let n = self.push_slice_no_notify(items);
        if n > 0 {
            self.notify_consumer();
        }
        n
    }

    /// [`push_slice`](Self::push_slice) without waking the consumer, as [`push`](Self::push)
    /// is to [`try_send`](Self::try_send): for a consumer that never sleeps on this ring (it
    /// spins or polls `pop`), or to push several batches and call
    /// [`notify_consumer`](Self::notify_consumer) once after them. A consumer that sleeps
    /// (`poll_recv`, `recv`, `pop_blocking`) is not woken by it.
    ///
    /// Cost per call: the copies and one Release store of `tail`; an Acquire load of `head`
    /// only when the producer's cached copy shows fewer free slots than `items.len()` (with
    /// a consumer keeping up, about once per `capacity - len` items, not once per call); no
    /// fence (`push_slice` adds one `SeqCst` fence and a Relaxed load per call).
    ///
    /// # Examples
    /// ```
    /// use aiothreads_core::ring::Ring;
    ///
    /// let mut ring = Ring::<u8, 8>::new();
    /// let (mut tx, mut rx) = ring.split();
    /// assert_eq!(tx.push_slice_no_notify(b"abc"), 3);
    /// assert_eq!(tx.push_slice_no_notify(b"de"), 2);
    /// tx.notify_consumer(); // one wake-up check for both batches
    /// let mut buf = [0; 8];
    /// assert_eq!(rx.pop_slice(&mut buf), 5);
    /// assert_eq!(&buf[..5], b"abcde");
    /// ```
    pub fn push_slice_no_notify(&mut self, items: &[T]) -> usize
    where
        T: Copy,
    {
        if self.is_closed() {
            return 0;
        }
        let n = self.free_for(items.len()).min(items.len());
        if n == 0 {
            return 0;
        }
        // The free region starts at `index(tail)` and wraps at most once.
        let start = self.raw.index(self.tail);
        let first = n.min(self.raw.cap - start);
        // SAFETY: `n` is at most the free slots that `limit` shows, and `limit` (the consumer's
        // `head` as last loaded, plus `cap`) never runs ahead of the real one: `start .. start
        // + first` (up to the buffer's end) and then `0 .. n - first` are vacant slots of the
        // producer's region.
        unsafe { self.raw.copy_in(start, &items[..first]) };
        if first < n {
            // The wrapped part: only when there is one (a `memcpy` call of nothing still costs
            // a call, a few percent of a 256-item batch).
            // SAFETY: as above.
            unsafe { self.raw.copy_in(0, &items[first..n]) };
        }
        self.publish(n);
        n
    }
}

impl<'a, T> Consumer<'a, T> {
    /// Gives up `n` slots after `head` (already read out) and counts them for the checkpoint.
    #[inline]
    fn release(&mut self, n: usize) {
        let old_head = self.head;
        self.head = self.raw.advance(self.head, n);
        // Release: pairs with the producer's Acquire load of `head`.
        self.raw.header().head.store(self.head, Ordering::Release);
        self.popped_from(old_head, n);
    }

    /// Pops up to `M` items at once (fewer if fewer are available; none if empty or closed),
    /// publishing `head` once. Counts towards the producer-wake checkpoint.
    ///
    /// # Examples
    /// ```
    /// use aiothreads_core::ring::Ring;
    ///
    /// let mut ring = Ring::<u32, 8>::new();
    /// let (mut tx, mut rx) = ring.split();
    /// tx.push_slice(&[1, 2, 3]);
    /// let batch = rx.pop_batch::<2>();
    /// assert_eq!(batch.as_slice(), [1, 2]);
    /// ```
    pub fn pop_batch<const M: usize>(&mut self) -> heapless::Vec<T, M> {
        let mut batch = heapless::Vec::new();
        let n = self.available().min(M);
        for i in 0..n {
            let pos = self.raw.advance(self.head, i);
            // SAFETY: `i < available`, so `pos` is in `head .. tail`: initialised, and given up
            // by `release` below, so it is read once.
            let value = unsafe { self.raw.read(pos) };
            // SAFETY: `i < n <= M`, so the vector has room.
            unsafe { batch.push_unchecked(value) };
        }
        if n > 0 {
            self.release(n);
        }
        batch
    }

    /// Copies up to `out.len()` available items into `out`, publishing `head` once; returns
    /// how many. Counts towards the producer-wake checkpoint.
    ///
    /// Cost per call: the copies and one Release store of `head`; an Acquire load of `tail`
    /// only when the consumer's cached copy shows fewer than `out.len()` items.
    ///
    /// # Examples
    /// See [`Producer::push_slice`].
    pub fn pop_slice(&mut self, out: &mut [T]) -> usize
    where
        T: Copy,
    {
        let n = self.available_for(out.len()).min(out.len());
        if n == 0 {
            return 0;
        }
        let start = self.raw.index(self.head);
        let first = n.min(self.raw.cap - start);
        let (out_first, out_rest) = out[..n].split_at_mut(first);
        // SAFETY: `n` is at most the items that `cached_tail` (the producer's `tail` as last
        // loaded, never ahead of the real one) shows: `start .. start + first` (up to the
        // buffer's end) and then `0 .. n - first` are initialised slots of the consumer's
        // region, given up below.
        unsafe { self.raw.copy_out(start, out_first) };
        if !out_rest.is_empty() {
            // SAFETY: as above (the wrapped part, only when there is one).
            unsafe { self.raw.copy_out(0, out_rest) };
        }
        self.release(n);
        n
    }

    /// An iterator over the items available now (`tail` is loaded once). Items it does not
    /// yield stay in the ring. A waiting producer is notified at most once, when it is
    /// dropped.
    ///
    /// Each yielded item is given up at once (a `Release` store of `head`, as in `pop`), so
    /// that forgetting the iterator can never make an item appear twice.
    ///
    /// # Examples
    /// ```
    /// use aiothreads_core::ring::Ring;
    ///
    /// let mut ring = Ring::<u32, 8>::new();
    /// let (mut tx, mut rx) = ring.split();
    /// tx.push_slice(&[1, 2, 3]);
    /// let sum: u32 = rx.drain().sum();
    /// assert_eq!(sum, 6);
    /// ```
    pub fn drain(&mut self) -> Drain<'_, 'a, T> {
        let remaining = self.available();
        Drain {
            consumer: self,
            remaining,
            checkpoint_reached: false,
        }
    }
}

/// Iterator returned by [`Consumer::drain`].
pub struct Drain<'r, 'a, T> {
    consumer: &'r mut Consumer<'a, T>,
    /// Items still available from the snapshot of `tail`.
    remaining: usize,
    /// A yielded item reached the consumer's checkpoint; the producer is notified on drop
    /// (once per drain).
    checkpoint_reached: bool,
}

impl<T> Iterator for Drain<'_, '_, T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let c = &mut *self.consumer;
        // SAFETY: the snapshot of `tail` had `remaining + 1` items after `head`: initialised.
        let value = unsafe { c.raw.read(c.head) };
        c.head = c.raw.advance1(c.head);
        // Release: pairs with the producer's Acquire load of `head`.
        c.raw.header().head.store(c.head, Ordering::Release);
        if c.head == c.next_event {
            if c.head == c.next_checkpoint {
                // Keep the checkpoint invariant now; notify once, on drop.
                c.count_checkpoint();
                c.restart_checkpoint();
                self.checkpoint_reached = true;
            } else {
                c.set_next_event();
            }
        }
        Some(value)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<T> ExactSizeIterator for Drain<'_, '_, T> {}

impl<T> Drop for Drain<'_, '_, T> {
    fn drop(&mut self) {
        if self.checkpoint_reached {
            self.consumer.notify_producer();
        }
    }
}

impl<T> fmt::Debug for Drain<'_, '_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}
