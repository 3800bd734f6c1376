// mlm/mlm.hpp — the whole library in one include.
//
//   #include <mlm/mlm.hpp>      // link mlm::mlm (find_package(mlm))
//
// encoder.hpp stands alone for users who want only the model.
#pragma once

#include "batch.hpp"
#include "checkpoint.hpp"
#include "collator.hpp"
#include "config.hpp"
#include "data.hpp"
#include "encoder.hpp"
#include "fields.hpp"
#include "file_io.hpp"
#include "hash.hpp"
#include "masked_lm.hpp"
#include "metrics.hpp"
#include "optimizer.hpp"
#include "parameters.hpp"
#include "random.hpp"
#include "run.hpp"
#include "safetensors.hpp"
#include "threads.hpp"
#include "tokenizer.hpp"
#include "trainer.hpp"
#include "trainer_config.hpp"
