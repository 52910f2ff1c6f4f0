//! Socket-call errors, numbered as on Linux so that scripts written for Linux compare unchanged.

use core::fmt;

macro_rules! errnos {
    ($($name:ident = $num:expr, $text:expr;)*) => {
        /// An error number, with Linux's numbering.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(missing_docs)] // the names are the documentation: they are the C constants
        pub enum Errno { $($name = $num,)* }

        impl Errno {
            /// Every error number this stack can return.
            pub const ALL: &'static [Errno] = &[$(Errno::$name,)*];

            /// The C name, e.g. `"ECONNREFUSED"`.
            pub const fn name(self) -> &'static str {
                match self { $(Errno::$name => stringify!($name),)* }
            }

            /// strerror()'s text, as packetdrill scripts write it in parentheses.
            pub const fn text(self) -> &'static str {
                match self { $(Errno::$name => $text,)* }
            }

            /// The number.
            pub const fn number(self) -> i32 {
                self as i32
            }

            /// Looks up a C name.
            pub fn from_name(name: &str) -> Option<Errno> {
                Self::ALL.iter().copied().find(|e| e.name() == name)
            }

            /// Looks up a number.
            pub fn from_number(n: i32) -> Option<Errno> {
                Self::ALL.iter().copied().find(|e| e.number() == n)
            }
        }
    };
}

errnos! {
    EPERM = 1, "Operation not permitted";
    ENOENT = 2, "No such file or directory";
    EINTR = 4, "Interrupted system call";
    EBADF = 9, "Bad file descriptor";
    EAGAIN = 11, "Resource temporarily unavailable";
    ENOMEM = 12, "Cannot allocate memory";
    EFAULT = 14, "Bad address";
    EINVAL = 22, "Invalid argument";
    EMFILE = 24, "Too many open files";
    EPIPE = 32, "Broken pipe";
    ENOTSOCK = 88, "Socket operation on non-socket";
    EDESTADDRREQ = 89, "Destination address required";
    EPROTOTYPE = 91, "Protocol wrong type for socket";
    ENOPROTOOPT = 92, "Protocol not available";
    EPROTONOSUPPORT = 93, "Protocol not supported";
    EOPNOTSUPP = 95, "Operation not supported";
    EAFNOSUPPORT = 97, "Address family not supported by protocol";
    EADDRINUSE = 98, "Address already in use";
    EADDRNOTAVAIL = 99, "Cannot assign requested address";
    ENETUNREACH = 101, "Network is unreachable";
    ECONNABORTED = 103, "Software caused connection abort";
    ECONNRESET = 104, "Connection reset by peer";
    ENOBUFS = 105, "No buffer space available";
    EISCONN = 106, "Transport endpoint is already connected";
    ENOTCONN = 107, "Transport endpoint is not connected";
    ETIMEDOUT = 110, "Connection timed out";
    ECONNREFUSED = 111, "Connection refused";
    EHOSTUNREACH = 113, "No route to host";
    EALREADY = 114, "Operation already in progress";
    EINPROGRESS = 115, "Operation now in progress";
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.text())
    }
}

impl std::error::Error for Errno {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_numbers() {
        // From Linux's include/uapi/asm-generic/errno.h and errno-base.h.
        assert_eq!(Errno::EAGAIN.number(), 11);
        assert_eq!(Errno::ECONNREFUSED.number(), 111);
        assert_eq!(Errno::ECONNRESET.number(), 104);
        assert_eq!(Errno::ETIMEDOUT.number(), 110);
        assert_eq!(Errno::EINPROGRESS.number(), 115);
        assert_eq!(Errno::from_name("EPIPE"), Some(Errno::EPIPE));
        assert_eq!(Errno::from_number(98), Some(Errno::EADDRINUSE));
        assert_eq!(Errno::ECONNREFUSED.to_string(), "ECONNREFUSED (Connection refused)");
    }
}
