//! covet's addition to tokio-uring 0.5 (see vendor/tokio-uring/COVET.md): a
//! socket receive as a oneshot operation with a nameable type, like
//! `UnsubmittedWrite`, so a caller can keep it in a struct without boxing a
//! future per operation.

use crate::buf::BoundedBufMut;
use crate::{io::SharedFd, BufResult, OneshotOutputTransform, UnsubmittedOneshot};
use io_uring::cqueue::Entry;
use std::io;
use std::marker::PhantomData;

/// An unsubmitted receive operation.
pub type UnsubmittedRecv<T> = UnsubmittedOneshot<RecvData<T>, RecvTransform<T>>;

#[allow(missing_docs)]
pub struct RecvData<T> {
    /// Holds a strong ref to the FD, preventing the file from being closed
    /// while the operation is in-flight.
    _fd: SharedFd,

    buf: T,
}

#[allow(missing_docs)]
pub struct RecvTransform<T> {
    _phantom: PhantomData<T>,
}

impl<T: BoundedBufMut> OneshotOutputTransform for RecvTransform<T> {
    type Output = BufResult<usize, T>;
    type StoredData = RecvData<T>;

    fn transform_oneshot_output(self, data: Self::StoredData, cqe: Entry) -> Self::Output {
        let mut buf = data.buf;
        let res = if cqe.result() >= 0 {
            let n = cqe.result() as usize;
            // Safety: the kernel wrote `n` bytes to the buffer.
            unsafe { buf.set_init(n) };
            Ok(n)
        } else {
            Err(io::Error::from_raw_os_error(-cqe.result()))
        };

        (res, buf)
    }
}

impl<T: BoundedBufMut> UnsubmittedRecv<T> {
    pub(crate) fn recv(fd: &SharedFd, mut buf: T) -> Self {
        use io_uring::{opcode, types};

        // Get raw buffer info
        let ptr = buf.stable_mut_ptr();
        let len = buf.bytes_total();

        Self::new(
            RecvData {
                _fd: fd.clone(),
                buf,
            },
            RecvTransform {
                _phantom: PhantomData,
            },
            opcode::Recv::new(types::Fd(fd.raw_fd()), ptr, len as _).build(),
        )
    }
}
