//! Size probe of `aiothreads-core`: each measured operation is one exported, never-inlined
//! function whose body is the operation alone (monomorphised for `u32`), and the two rings of
//! the README's RAM table are exported `static`s. `scripts/sizes.sh` reads their sizes with
//! `llvm-nm --print-size`.
#![no_std]

use core::pin::Pin;
use core::task::{Context, Poll};

use aiothreads_core::ring::{Consumer, Producer, Ring};
use futures_core::Stream;

/// RAM of a `Ring<u32, 16>` (64 bytes of payload).
#[no_mangle]
pub static RING_U32_16: Ring<u32, 16> = Ring::new();

/// RAM of a `Ring<u8, 64>` (64 bytes of payload).
#[no_mangle]
pub static RING_U8_64: Ring<u8, 64> = Ring::new();

// The RAM sizes published in the README, held at compile time on each target the README lists
// (`make nostd` builds this crate for the microcontroller targets, `make sizes` also for the
// host): a change of layout or padding fails here until the table is regenerated.
#[cfg(target_arch = "x86_64")]
const _: () = assert!(size_of::<Ring<u32, 16>>() == 512 && size_of::<Ring<u8, 64>>() == 512);
// Cortex-M and bare-metal RISC-V: no cache padding, 36 bytes of indices, flags and wakers.
#[cfg(all(
    target_os = "none",
    target_pointer_width = "32",
    any(target_arch = "arm", target_arch = "riscv32")
))]
const _: () = assert!(size_of::<Ring<u32, 16>>() == 100 && size_of::<Ring<u8, 64>>() == 100);

/// `Producer::push`: `true` if pushed.
#[no_mangle]
#[inline(never)]
pub fn probe_push(tx: &mut Producer<'static, u32>, value: u32) -> bool {
    tx.push(value).is_ok()
}

/// `Consumer::pop`: the item, or `u32::MAX` when empty or closed.
#[no_mangle]
#[inline(never)]
pub fn probe_pop(rx: &mut Consumer<'static, u32>) -> u32 {
    rx.pop().unwrap_or(u32::MAX)
}

/// `Producer::try_send` (push, then wake the consumer if it waits): `true` if sent.
#[no_mangle]
#[inline(never)]
pub fn probe_try_send(tx: &mut Producer<'static, u32>, value: u32) -> bool {
    tx.try_send(value).is_ok()
}

/// The consumer's `Stream::poll_next`: the item, `u32::MAX - 1` when pending, `u32::MAX` at
/// the end.
#[no_mangle]
#[inline(never)]
pub fn probe_poll_next(rx: Pin<&mut Consumer<'static, u32>>, cx: &mut Context<'_>) -> u32 {
    match rx.poll_next(cx) {
        Poll::Ready(Some(value)) => value,
        Poll::Ready(None) => u32::MAX,
        Poll::Pending => u32::MAX - 1,
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}
