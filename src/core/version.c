/* SPDX-License-Identifier: MIT */
#include <ivlink/version.h>

#include "config.h"
#include "core/internal.h"

IVL_EXPORT unsigned ivl_version(void)
{
	return IVL_VERSION_HEX;
}

IVL_EXPORT const char *ivl_version_string(void)
{
	return IVL_VERSION_STRING;
}
