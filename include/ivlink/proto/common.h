/* SPDX-License-Identifier: (GPL-2.0-only WITH Linux-syscall-note) OR MIT */
/*
 * Conventions of every ivlink wire and shared-memory format (the headers
 * in <ivlink/proto/>; normative text: docs/protocol.md).
 *
 *  - Only fixed-width types of <linux/types.h>: __u8.. __u64 for bytes and
 *    host-order scratch, __le16/__le32/__le64 for multi-byte fields that
 *    cross a boundary.  ivlink supports little-endian machines only, so
 *    userspace may read them in place; kernel code uses le32_to_cpu() and
 *    friends, and sparse checks that it does.
 *  - Explicit padding, no bit-fields, no pointers, no enums as field types.
 *  - Fields that several processes update concurrently in shared memory are
 *    plain integers accessed with the compiler's __atomic builtins (as the
 *    kernel and C++ can), never C11 _Atomic types.
 *  - Every size and every offset that matters is checked at compile time
 *    with IVL_PROTO_ASSERT.
 *
 * These headers compile alone as C11, as C++17 and inside a Linux kernel
 * module (tests/headers checks all three).
 */
#ifndef IVLINK_PROTO_COMMON_H
#define IVLINK_PROTO_COMMON_H

#include <linux/types.h>
#ifdef __KERNEL__
#include <linux/stddef.h>
#else
#include <stddef.h>
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ivlink supports little-endian machines only"
#endif

#ifdef __cplusplus
#define IVL_PROTO_ASSERT(expr, msg) static_assert(expr, msg)
#else
#define IVL_PROTO_ASSERT(expr, msg) _Static_assert(expr, msg)
#endif

/* Check the size of a wire structure, and the offset of one of its fields. */
#define IVL_PROTO_SIZE(type, n) IVL_PROTO_ASSERT(sizeof(type) == (n), #type " size")
#define IVL_PROTO_OFFSET(type, field, n) \
	IVL_PROTO_ASSERT(offsetof(type, field) == (n), #type "." #field " offset")

#endif
