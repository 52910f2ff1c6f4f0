//! The user calls of RFC 9293 3.10.1-3.10.5 as they act on one connection: OPEN (active), SEND, RECEIVE,
//! CLOSE, ABORT, and the socket options that reshape a live connection. The host maps BSD calls and fds onto
//! these; what a call does to the connection is here.

use super::{Ctx, SockOpts, Tcb, TcpState, Timer};
use crate::config::Config;
use crate::errno::Errno;
use crate::isn::FourTuple;
use crate::seq::SeqNum;
use crate::time::Instant;
use core::time::Duration;

impl Tcb {
    /// 3.10.1 OPEN, active: "A SYN segment of the form <SEQ=ISS><CTL=SYN> is sent ... enter SYN-SENT state".
    pub(crate) fn open_active(ctx: &mut Ctx<'_>, tuple: FourTuple, iss: SeqNum, sockopts: SockOpts) -> Tcb {
        let mut t = Tcb::new(tuple, iss, ctx.now, ctx.config, sockopts);
        t.init_receive_side(ctx);
        t.set_state(TcpState::SynSent);
        t.send_syn(ctx);
        t
    }

    /// 3.10.2 SEND: queues what fits in the send buffer and sends what the windows allow; returns how much was
    /// queued. Errors as Linux's tcp_sendmsg: a pending error first, EPIPE once the sending side is closed,
    /// EAGAIN while the handshake runs or the buffer is full.
    pub(crate) fn send(&mut self, ctx: &mut Ctx<'_>, data: &[u8]) -> Result<usize, Errno> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if self.shut_wr || self.fin_queued {
            return Err(Errno::EPIPE);
        }
        match self.state {
            TcpState::SynSent | TcpState::SynReceived => return Err(Errno::EAGAIN),
            TcpState::Established | TcpState::CloseWait => {}
            _ => return Err(Errno::EPIPE),
        }
        let room = self.sndbuf_cap.saturating_sub(self.send_buf.len());
        if room == 0 {
            return Err(Errno::EAGAIN);
        }
        let n = room.min(data.len());
        self.send_buf.extend(&data[..n]);
        self.output(ctx);
        Ok(n)
    }

    /// 3.10.3 RECEIVE: up to `len` bytes (left in place with `peek`), an empty vector at end of stream, or
    /// EAGAIN. Reading opens the window; the update goes out when it grew by two segments or half the buffer
    /// (RFC 9293 3.8.6.2.2, receiver-side silly window avoidance).
    pub(crate) fn receive(&mut self, ctx: &mut Ctx<'_>, len: usize, peek: bool) -> Result<Vec<u8>, Errno> {
        let before = self.rcv_wnd();
        let out = self.read_buffered(len, peek, false);
        // No window update once the peer's FIN is in: it sends no more (Linux's tcp_cleanup_rbuf skips the update
        // under RCV_SHUTDOWN).
        if matches!(&out, Ok(d) if !d.is_empty()) && self.state.is_synchronized() && !peek && !self.fin_received {
            let now_wnd = self.rcv_window(ctx);
            let step = (2 * u32::from(self.adv_mss)).min(self.rcv_space(ctx) / 2);
            if now_wnd >= before + step {
                self.send_ack(ctx);
            }
        }
        out
    }

    /// What RECEIVE returns from the buffers alone; `ended` for a connection that is gone (its fd outlived it).
    pub(crate) fn read_buffered(&mut self, len: usize, peek: bool, ended: bool) -> Result<Vec<u8>, Errno> {
        // A read of zero bytes is a read like any other that copies nothing: 0 while data waits (Linux's
        // tcp_recvmsg wants at least one byte ready, then copies none), EAGAIN or the pending error otherwise.
        if !self.recv_buf.is_empty() {
            let n = len.min(self.recv_buf.len());
            let data: Vec<u8> = self.recv_buf.range(..n).copied().collect();
            if !peek {
                self.recv_buf.drain(..n);
            }
            return Ok(data);
        }
        // The peer's FIN was the end of its data, whatever came after: Linux's tcp_recvmsg reports end of stream
        // (SOCK_DONE) before a pending error, which a later write() still gets.
        if self.fin_received {
            return Ok(Vec::new());
        }
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if self.shut_rd || ended || self.state == TcpState::Closed {
            return Ok(Vec::new());
        }
        Err(Errno::EAGAIN)
    }

    /// shutdown(): SHUT_RD stops reading; SHUT_WR is CLOSE's sending half.
    pub(crate) fn shutdown(&mut self, ctx: &mut Ctx<'_>, read: bool, write: bool) {
        if self.state == TcpState::SynSent {
            // Linux's inet_shutdown disconnects a connecting socket whatever `how` says (tcp_disconnect): the
            // connection is dropped with ECONNRESET pending and neither side marked shut. RFC 9293's CLOSE in
            // SYN-SENT deletes the TCB the same way.
            self.disconnected = true;
            self.error = Some(Errno::ECONNRESET);
            self.close_now();
            return;
        }
        if read {
            self.shut_rd = true;
        }
        if write && !self.shut_wr {
            self.shut_wr = true;
            self.close_sending(ctx);
        }
    }

    /// 3.10.4 CLOSE by the application, which gives up its fd: the connection becomes an orphan. With unread
    /// data (RFC 2525 2.17, as Linux) or SO_LINGER {1, 0} it is an ABORT instead; in SYN-SENT it is deleted.
    pub(crate) fn close(&mut self, ctx: &mut Ctx<'_>, linger0: bool) {
        self.orphan = true;
        let unread = !self.recv_buf.is_empty();
        if linger0 || (unread && self.state != TcpState::TimeWait) {
            // ABORT deletes even a TIME-WAIT TCB (3.10.5); Linux cannot, its TIME-WAIT is no longer attached to
            // the socket.
            self.abort_by_user(ctx);
        } else if self.state == TcpState::SynSent {
            // "Delete the TCB and return 'error: closing' responses to any queued SENDs".
            self.close_now();
        } else {
            self.shut_wr = true;
            self.close_sending(ctx);
            if self.state == TcpState::FinWait2 {
                let at = ctx.now + Duration::from_secs(u64::from(ctx.config.tcp_fin_timeout));
                self.set_timer(Timer::FinWait2, at);
            }
        }
    }

    /// 3.10.5 ABORT: in SYN-RECEIVED, ESTABLISHED, FIN-WAIT-1/2 and CLOSE-WAIT "a reset segment should be
    /// sent"; in every state the TCB is deleted.
    pub(crate) fn abort_by_user(&mut self, ctx: &mut Ctx<'_>) {
        let resets = matches!(
            self.state,
            TcpState::Established
                | TcpState::CloseWait
                | TcpState::FinWait1
                | TcpState::FinWait2
                | TcpState::SynReceived
        );
        if resets {
            self.send_active_reset(ctx);
        }
        self.close_now();
    }

    /// Stops the sending direction: the FIN is queued and the state moves (3.10.4 CLOSE).
    fn close_sending(&mut self, ctx: &mut Ctx<'_>) {
        match self.state {
            // (SYN-SENT never gets here: close() deletes the TCB and shutdown() disconnects it.)
            // "SYN-RECEIVED: If no SENDs have been issued and there is no pending data to send, then form a FIN
            // segment and send it, and enter FIN-WAIT-1 state".
            TcpState::SynReceived | TcpState::Established => self.set_state(TcpState::FinWait1),
            TcpState::CloseWait => self.set_state(TcpState::LastAck),
            _ => return,
        }
        self.fin_queued = true;
        self.output(ctx);
    }

    /// setsockopt() on a live connection: buffers resize, and changing SO_KEEPALIVE or TCP_KEEPIDLE
    /// (`rearm_keepalive`) restarts or stops the keep-alive timer. `now` is the host's latest time.
    pub(crate) fn apply_sockopts(&mut self, opts: SockOpts, rearm_keepalive: bool, config: &Config, now: Instant) {
        let fresh = !core::mem::replace(&mut self.sockopts, opts).keepalive && opts.keepalive;
        if let Some(b) = opts.rcvbuf {
            self.rcvbuf_cap = b as usize;
        }
        if let Some(b) = opts.sndbuf {
            self.sndbuf_cap = b as usize;
        }
        if rearm_keepalive {
            if opts.keepalive && self.state.is_synchronized() {
                // Linux: SO_KEEPALIVE waits a whole idle time from now; TCP_KEEPIDLE counts from the last receipt.
                let idle = Duration::from_secs(u64::from(opts.keepidle.unwrap_or(config.tcp_keepalive_time)));
                self.set_timer(Timer::Keepalive, ((if fresh { now } else { self.last_rcv }) + idle).max(now));
            } else {
                self.clear_timer(Timer::Keepalive);
            }
        }
    }
}
