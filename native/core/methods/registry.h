// The registry of methods: see registry.cpp to add one.
#pragma once
#include "core/methods/method.h"
