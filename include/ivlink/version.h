/* SPDX-License-Identifier: MIT */
#ifndef IVLINK_VERSION_H
#define IVLINK_VERSION_H

#ifdef __cplusplus
extern "C" {
#endif

#define IVL_VERSION_MAJOR 0
#define IVL_VERSION_MINOR 1
#define IVL_VERSION_PATCH 0
#define IVL_VERSION_HEX \
	((IVL_VERSION_MAJOR << 16) | (IVL_VERSION_MINOR << 8) | IVL_VERSION_PATCH)

/* Run-time version of the loaded library, as IVL_VERSION_HEX and as text. */
unsigned ivl_version(void);
const char *ivl_version_string(void);

#ifdef __cplusplus
}
#endif
#endif
