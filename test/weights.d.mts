/** The tensor payload of a TorchScript zip (data/ entries), for bit-level comparison. */
export declare function weights(zip: Buffer): string[];
