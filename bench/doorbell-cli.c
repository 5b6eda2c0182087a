/* SPDX-License-Identifier: MIT */
#include "doorbell.h"

int main(int argc, char **argv)
{
	return bench_doorbell_main(argc, argv);
}
