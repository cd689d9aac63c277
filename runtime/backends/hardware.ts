export function hasHardware(_name: string, _num: number): boolean { return false; }
