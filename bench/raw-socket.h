/* SPDX-License-Identifier: MIT */
/*
 * Raw socket and fd primitives (the wake-up primitives are in primitives.h),
 * measured in the benchmark's own run so that ivlink's numbers can be given
 * as multiples of them (STYLE.md: ratios, not absolute numbers from another
 * day).  Each result is the median over @iters timed
 * repetitions in this process, in nanoseconds; negative -errno on failure.
 */
#ifndef IVL_BENCH_RAW_SOCKET_H
#define IVL_BENCH_RAW_SOCKET_H

/* socket() + connect() + accept4() + close() of both ends, on a UNIX stream
 * listener bound at @path (which must not exist; removed afterwards). */
double raw_unix_connect_accept_ns(const char *path, unsigned iters);

/* One 8-byte sendmsg() carrying one fd with SCM_RIGHTS, the recvmsg() that
 * takes it out on the other end of a socketpair, and close() of the received
 * fd: the kernel's floor for moving one fd of the ivshmem protocol.
 * *send_ns (if not NULL) gets the median of the sendmsg() part alone, the
 * sender's floor. */
double raw_scm_rights_msg_ns(unsigned iters, double *send_ns);

/* The same 8-byte send+receive without an fd (a "peer left" message). */
double raw_plain_msg_ns(unsigned iters);

/* eventfd() + close(): what the server spends per vector it creates. */
double raw_eventfd_ns(unsigned iters);

#endif
