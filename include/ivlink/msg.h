/* SPDX-License-Identifier: MIT */
/*
 * The ivshmem server -> peer message codec (QEMU's protocol: one 8-byte
 * little-endian integer per message, optionally with one fd).  Formats:
 * <ivlink/proto/ivshmem.h>; normative text: docs/protocol.md §1.
 * Thread safety: ivl_msg_send() may be called from any thread (one
 * sendmsg() per message); a reader is used by one thread at a time.
 * Ownership: every fd received is the reader's until a complete message
 * hands it to the caller (struct ivl_msg.fd); every error path closes the
 * fds it took.
 */
#ifndef IVLINK_MSG_H
#define IVLINK_MSG_H

#include <stddef.h>
#include <stdint.h>

#include <ivlink/proto/ivshmem.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One decoded message.  fd is -1 when none was attached; otherwise the
 * holder of the struct owns it. */
struct ivl_msg {
	int64_t value;
	int fd;
};

/*
 * Send one message (and @fd if >= 0, which stays owned by the caller) with
 * one sendmsg().  Returns 0; -EBADF (@sock < 0); -EAGAIN when the socket
 * is full (nothing was sent); -ETOOMANYREFS when the kernel's in-flight fd
 * limit is hit (nothing was sent); -EIO for a short send (the stream is out
 * of step: drop the connection); -EPIPE / -ECONNRESET / other -errno of
 * sendmsg(2).  Never raises SIGPIPE.
 */
int ivl_msg_send(int sock, int64_t value, int fd);

/*
 * Stream reassembly.  Messages may arrive split; the fd of a message arrives
 * with one of its bytes.  Thread safety: none (one reader per socket).
 */
struct ivl_msg_reader {
	uint8_t buf[IVL_MSG_SIZE];
	size_t have; /* bytes of the current message so far */
	int fd;      /* fd received for the current message, or -1 */
};

/* Start empty (no fd held).  The struct is the caller's memory. */
void ivl_msg_reader_init(struct ivl_msg_reader *r);
/* Close any fd held for an incomplete message and start over. */
void ivl_msg_reader_reset(struct ivl_msg_reader *r);
/* How many bytes complete the current message (1..8). */
size_t ivl_msg_reader_want(const struct ivl_msg_reader *r);

/*
 * Feed @len bytes (1 <= len <= want) and the @nfds fds that arrived with
 * them.  Ownership of every fd passes to the reader at once.
 * Returns 1 when a message is complete (*out filled, its fd now owned by the
 * caller), 0 when more bytes are needed.  Errors: -EINVAL (NULL argument,
 * @len 0 or more than wanted, a negative fd; the fds passed are closed),
 * -EPROTO when a message would carry more than one fd (all of them closed,
 * the reader reset).
 */
int ivl_msg_reader_feed(struct ivl_msg_reader *r, const void *data, size_t len,
			const int *fds, size_t nfds, struct ivl_msg *out);

/*
 * Read from a non-blocking socket with recvmsg(MSG_CMSG_CLOEXEC), reading
 * only what the current message needs, and feed the reader.
 * Returns 1 with *out filled; -EAGAIN when nothing more is available now;
 * -ECONNRESET on end of stream (-EPROTO if it ended inside a message);
 * -EPROTO for a bad fd attachment or truncated control data; -EINVAL (NULL
 * @r or @out); other -errno of recvmsg(2).  After an error other than
 * -EAGAIN the reader holds no fd.
 */
int ivl_msg_recv(int sock, struct ivl_msg_reader *r, struct ivl_msg *out);

#ifdef __cplusplus
}
#endif
#endif
