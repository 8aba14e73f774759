"""Reading and writing what cryo-EM users have: MRC stacks, RELION STAR files, cryoSPARC .cs files."""
