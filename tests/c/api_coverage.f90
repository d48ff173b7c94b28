! Every function of the C API through the Fortran module (run by
! tests/c_programs.rs):
!   api_coverage_f MODEL_DIR DATA_DIR WORK_DIR
module coverage_callbacks
    use, intrinsic :: iso_c_binding
    use e3relax, only: e3relax_c_string
    implicit none
    integer :: rounds = 0
    integer :: last_done = 0, last_total = 0
contains
    !> Counts rounds; asks to stop after the first.
    function stop_after_first(json, user_data) bind(C) result(stop)
        type(c_ptr), value :: json, user_data
        integer(c_int32_t) :: stop
        stop = 0
        ! user_data is what e3relax_train was given (nothing here).
        if (c_associated(user_data)) error stop 'unexpected user_data'
        if (index(e3relax_c_string(json), '"event":"round"') > 0) then
            rounds = rounds + 1
            stop = 1
        end if
    end function stop_after_first

    !> Records the last progress report of a batched prediction.
    subroutine record_progress(done, total, user_data) bind(C)
        integer(c_int32_t), value :: done, total
        type(c_ptr), value :: user_data
        if (c_associated(user_data)) error stop 'unexpected user_data'
        last_done = done
        last_total = total
    end subroutine record_progress
end module coverage_callbacks

program api_coverage
    use, intrinsic :: iso_c_binding
    use e3relax
    use coverage_callbacks
    implicit none
    type(e3relax_model) :: model, shipped, broken
    character(len=512) :: model_dir, data, work, text
    character(len=:), allocatable :: config
    integer :: failures, ierr, layers, count
    integer :: numbers(3)
    real(c_double) :: positions(3, 3), lattice(3, 3), new_positions(3, 3), new_lattice(3, 3)
    real(c_double), allocatable :: all_positions(:, :, :), all_lattices(:, :, :)
    logical :: move_mask(3, 3)
    real(c_double) :: atom_uncertainty(3), cell_uncertainty, volume_uncertainty
    real(c_double) :: batch_positions(3, 6), batch_lattices(3, 3, 2)

    failures = 0
    call get_command_argument(1, model_dir)
    call get_command_argument(2, data)
    call get_command_argument(3, work)

    call e3relax_version(text)
    call expect(len_trim(text) > 0, 'version')
    call e3relax_torch_version(text)
    call expect(trim(text) == '2.11.0', 'torch version')
    call expect(e3relax_abi_version() == E3RELAX_FORTRAN_ABI_VERSION, 'ABI version')
    call e3relax_cuda_device_count(count)
    call expect(count >= 0, 'CUDA device count')
    call e3relax_set_num_threads(1)
    call e3relax_set_num_threads(100000, ierr=ierr)
    call expect(ierr == E3RELAX_INVALID_ARGUMENT, 'thread bound')

    ! Every load option; a device name with a quote cannot break the JSON.
    call e3relax_load(model, trim(model_dir), unit='angstrom', device='cpu', fixed_cell=.false., &
        coordinates='cartesian', batch_size=4, symmetry_tolerance=2d-3)
    call e3relax_load(broken, trim(model_dir), device='cpu", "x": "', ierr=ierr)
    call expect(ierr == E3RELAX_DEVICE_ERROR .or. ierr == E3RELAX_INVALID_ARGUMENT, 'escaped device')
    call e3relax_last_error(text)
    call expect(index(text, 'unknown field') == 0, 'the quote stayed inside the string')
    call e3relax_load(broken, trim(model_dir), symmetrize=.false., coordinates='fractional', ierr=ierr)
    call expect(ierr == E3RELAX_SUCCESS, 'raw output, fractional')
    call e3relax_free(broken)

    numbers = [8, 12, 14]
    positions = reshape([0.1d0, 0.2d0, 0.3d0, 2.0d0, 2.1d0, 2.2d0, 3.5d0, 1.0d0, 4.4d0], [3, 3])
    lattice = reshape([5.1d0, 0d0, 0d0, 1.3d0, 4.7d0, 0d0, -0.8d0, 0.9d0, 6.2d0], [3, 3])
    call e3relax_predict(model, 3, numbers, positions, lattice, new_positions, new_lattice)
    call e3relax_num_layers(model, layers)
    allocate (all_positions(3, 3, layers), all_lattices(3, 3, layers))
    call e3relax_predict_layers(model, 3, numbers, positions, lattice, all_positions, all_lattices)
    call expect(maxval(abs(all_positions(:, :, layers) - new_positions)) < 1d-12, 'last layer = prediction')
    call expect(maxval(abs(all_lattices(:, :, layers) - new_lattice)) < 1d-12, 'last lattice = prediction')
    ! Progress of a batched prediction.
    call e3relax_set_predict_progress(model, c_funloc(record_progress))
    call e3relax_predict_batch(model, 2, [3, 3], [numbers, numbers], reshape([positions, positions], [3, 6]), &
        reshape([lattice, lattice], [3, 3, 2]), batch_positions, batch_lattices)
    call expect(last_done == 2 .and. last_total == 2, 'batch progress')
    ! Settings for one call: the cells stay.
    call e3relax_predict_batch(model, 2, [3, 3], [numbers, numbers], reshape([positions, positions], [3, 6]), &
        reshape([lattice, lattice], [3, 3, 2]), batch_positions, batch_lattices, options='{"fixed_cell": true}')
    call expect(all(batch_lattices(:, :, 2) == lattice), 'fixed cell for one call')
    call e3relax_set_predict_progress(model, c_null_funptr)
    call e3relax_free(model)

    ! The ensemble's spread.
    call e3relax_load(model, trim(model_dir), uncertainty=.true.)
    call e3relax_predict_uncertainty(model, 3, numbers, positions, lattice, new_positions, new_lattice, &
        atom_uncertainty, cell_uncertainty, volume_uncertainty)
    call expect(all(atom_uncertainty > 0d0) .and. cell_uncertainty > 0d0 .and. volume_uncertainty > 0d0, &
        'ensemble spread')
    call e3relax_free(model)

    ! Frozen atoms (Quantum ESPRESSO's if_pos = 0): atom 1 on every axis,
    ! atom 3 along z; with a fixed cell they come back bit for bit.
    call e3relax_load(model, trim(model_dir), fixed_cell=.true.)
    move_mask = .true.
    move_mask(:, 1) = .false.
    move_mask(3, 3) = .false.
    call e3relax_predict(model, 3, numbers, positions, lattice, new_positions, new_lattice, move_mask=move_mask)
    call expect(all(new_positions(:, 1) == positions(:, 1)), 'frozen atom unmoved')
    call expect(new_positions(3, 3) == positions(3, 3), 'frozen axis unmoved')
    call expect(any(new_positions(:, 2) /= positions(:, 2)), 'free atom moves')
    call e3relax_predict(model, 3, numbers, positions, lattice, new_positions, new_lattice, move_mask=move_mask, &
        lattice_axes=.true.)
    call expect(all(new_positions(:, 1) == positions(:, 1)), 'frozen atom unmoved (lattice axes)')
    call e3relax_free(model)

    call e3relax_load(shipped, '')
    call e3relax_num_layers(shipped, layers)
    call expect(layers == 4, 'shipped default model')
    call e3relax_free(shipped)

    config = '{"data": ["'//trim(data)//'"], "output": "'//trim(work)//'/fortran-run", "max_epochs": 3, '// &
        '"batch_size": 8, "validation_fraction": 0.25, "model": {"hidden_channels": 8, "num_layers": 1, '// &
        '"num_rbf": 4, "rbf_cutoff": 30.0, "envelope_exponent": 5, "num_elements": 118, '// &
        '"graph_radius": 5.0, "max_neighbors": 16}}'
    call e3relax_train(config, progress=stop_after_first)
    call expect(rounds == 1, 'the callback stopped the run after one round')
    call e3relax_train(config, resume=.true.)
    call e3relax_train('{', ierr=ierr)
    call expect(ierr == E3RELAX_INVALID_ARGUMENT, 'bad training config')

    write (*, '(a, i0, a)') 'Fortran API coverage: ', failures, ' failed'
    if (failures /= 0) error stop 1
contains
    subroutine expect(condition, what)
        logical, intent(in) :: condition
        character(len=*), intent(in) :: what
        if (.not. condition) then
            write (0, '(a)') 'FAIL '//what
            failures = failures + 1
        end if
    end subroutine expect
end program api_coverage
