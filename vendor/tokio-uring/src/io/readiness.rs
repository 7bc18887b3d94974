//! covet's addition to tokio-uring 0.5 (see vendor/tokio-uring/COVET.md):
//! waiting until a socket is readable without lending the kernel a buffer
//! (`IORING_OP_POLL_ADD`).

use crate::io::SharedFd;
use crate::runtime::driver::op::{Completable, CqeResult, Op};
use crate::runtime::CONTEXT;
use std::io;

pub(crate) struct PollReadable {
    /// Holds a strong ref to the FD, preventing the file from being closed
    /// while the operation is in-flight.
    #[allow(dead_code)]
    fd: SharedFd,
}

impl Op<PollReadable> {
    pub(crate) fn poll_readable(fd: &SharedFd) -> io::Result<Op<PollReadable>> {
        use io_uring::{opcode, types};

        CONTEXT.with(|x| {
            x.handle().expect("Not in a runtime context").submit_op(
                PollReadable { fd: fd.clone() },
                |_| opcode::PollAdd::new(types::Fd(fd.raw_fd()), libc::POLLIN as _).build(),
            )
        })
    }
}

impl Completable for PollReadable {
    type Output = io::Result<()>;

    fn complete(self, cqe: CqeResult) -> Self::Output {
        cqe.result.map(|_| ())
    }
}
