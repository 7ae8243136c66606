"""The refinement path: crop around the mask, edit the crop remotely, put it back, blend."""
